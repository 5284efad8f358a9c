"""Figures (Agg canvas, PNG + PDF) and the self-contained HTML report."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg

from noisybench.reporting import ReportOptions
from noisybench.reporting.leaderboard import build_leaderboard
from noisybench.reporting.plots import all_figures, cliques
from noisybench.store.report import report_dir as make_report
from noisybench.store.results import load_history, load_results

PNG = b"\x89PNG\r\n\x1a\n"


def test_figures_cover_noise_curves_diagnostics_and_cd(synthetic_store: Path) -> None:
    board = build_leaderboard(load_results(synthetic_store))
    figures = all_figures(board, load_history(synthetic_store))
    assert set(figures) == {"accuracy_vs_noise", "memorization", "diag_selected_frac", "diag_select_precision",
                            "diag_select_recall", "cd_diagram"}
    assert all(isinstance(f.canvas, FigureCanvasAgg) for f in figures.values())
    memo = figures["memorization"]
    assert len([ax for ax in memo.axes if ax.get_visible()]) == 4
    first = memo.axes[0]
    assert [line.get_label() for line in first.get_lines()] == ["CE", "co_teaching", "GCE"]  # the table's order
    assert len(memo.legends) == 1 and not any(ax.get_legend() for ax in memo.axes)  # one legend, not one per panel
    assert [t.get_text() for t in memo.legends[0].get_texts()] == ["CE", "co_teaching", "GCE"]
    assert first.get_title() == "Digits Sym. 20 %"
    # the curve is the per-epoch mean over seeds of the stored test accuracy
    history = load_history(synthetic_store)
    part = history[(history.method == "ce") & (history.dataset == "digits") & (history.noise == "sym:0.2")]
    line = next(ln for ln in first.get_lines() if ln.get_label() == "CE")
    assert list(line.get_ydata()) == list(part.groupby("epoch")["test_acc"].mean())
    diag = figures["diag_select_recall"].axes[0]
    assert [ln.get_label() for ln in diag.get_lines()] == ["co_teaching"]
    assert diag.get_ylabel() == "selection recall"  # words, not the history column name


def test_cliques() -> None:
    ranks = {"a": 1.0, "b": 1.5, "c": 2.6, "d": 3.9}
    diff = {frozenset(p): abs(ranks[p[0]] - ranks[p[1]]) >= 1.4 for p in
            [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]}
    assert cliques(ranks, diff) == [["a", "b"], ["b", "c"], ["c", "d"]]


def test_plots_dir_writes_png_and_pdf(synthetic_store: Path, tmp_path: Path) -> None:
    options = ReportOptions(fmt="table", plots_dir=tmp_path / "figs")
    make_report(synthetic_store, options)
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert "cd_diagram.pdf" in names and "cd_diagram.png" in names and len(names) == 12
    assert (tmp_path / "figs" / "memorization.png").read_bytes().startswith(PNG)
    assert (tmp_path / "figs" / "memorization.pdf").read_bytes().startswith(b"%PDF")


def test_html_is_self_contained_with_figures(synthetic_store: Path) -> None:
    html = make_report(synthetic_store, ReportOptions(fmt="html"))[0]
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) == 6 and all(base64.b64decode(i).startswith(PNG) for i in images)
    assert not re.search(r"(src|href)=['\"]?(http|//|file:)", html)
    assert "<strong>84.67</strong>" in html and "<u>70.17</u>" in html and "†" in html
    assert "ddof = 1" in html and "Warnings" in html and "Hyperparameter provenance" in html


def test_pdf_figures_embed_truetype_fonts_not_type3(synthetic_store: Path, tmp_path: Path) -> None:
    import matplotlib

    before = matplotlib.rcParams["pdf.fonttype"]
    make_report(synthetic_store, ReportOptions(fmt="table", plots_dir=tmp_path / "figs"))
    pdfs = sorted((tmp_path / "figs").glob("*.pdf"))
    assert len(pdfs) == 6
    for pdf in pdfs:
        fonts = re.findall(rb"/Type\s*/Font\s*/Subtype\s*/(\w+)|/Subtype\s*/(\w+)\s*/Type\s*/Font", pdf.read_bytes())
        subtypes = {a or b for a, b in fonts}
        assert subtypes and b"Type3" not in subtypes, (pdf.name, subtypes)
        assert subtypes <= {b"TrueType", b"Type0", b"CIDFontType2"}, (pdf.name, subtypes)
    assert matplotlib.rcParams["pdf.fonttype"] == before  # set inside a context, not globally


def test_single_rate_family_puts_methods_on_x_and_captions_are_sentences(synthetic_store: Path) -> None:
    board = build_leaderboard(load_results(synthetic_store))
    fig = all_figures(board, load_history(synthetic_store))["accuracy_vs_noise"]
    asym = next(ax for ax in fig.axes if "Asym" in ax.get_title())
    assert [t.get_text() for t in asym.get_xticklabels()] == ["CE", "co_teaching", "GCE"]
    assert "40 %" in asym.get_xlabel()
    sym = next(ax for ax in fig.axes if "Digits — Sym." in ax.get_title())
    assert [t.get_text() for t in sym.get_xticklabels()] == ["20", "50"]
    html = make_report(synthetic_store, ReportOptions(fmt="html"))[0]
    captions = re.findall(r"<figcaption[^>]*>([^<]*)</figcaption>", html)
    assert len(captions) == 6 and not any("_" in c for c in captions)
    assert any(c.startswith("Clean-selection recall over epochs") for c in captions)


def test_train_fit_figure_shows_memorisation_of_mislabelled_samples(synthetic_store: Path) -> None:
    from noisybench.reporting.plots import train_fit_curves

    board = build_leaderboard(load_results(synthetic_store))
    history = load_history(synthetic_store)
    assert train_fit_curves(history, board) is None  # histories without the columns: no figure
    history = history.assign(train_fit_noisy=history["epoch"] * 10.0, train_fit_clean=90.0 + history["epoch"])
    fig = train_fit_curves(history, board)
    first = fig.axes[0]
    solid = [ln for ln in first.get_lines() if ln.get_linestyle() == "-"]
    dotted = [ln for ln in first.get_lines() if ln.get_linestyle() == ":"]
    assert len(solid) == len(dotted) == 3
    assert list(solid[0].get_ydata()) == [0.0, 10.0, 20.0, 30.0] and list(dotted[0].get_ydata())[0] == 90.0
    assert "mislabelled samples predicted as their noisy label" in fig.get_label()
