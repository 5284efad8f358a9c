"""LaTeX: golden files pin the output; pdflatex compiles it (marker ``latex``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from noisybench.reporting import ReportOptions
from noisybench.reporting.latex import latex_escape
from noisybench.store.report import report_dir as make_report
from tests.reporting.conftest import GOLDEN, write_run

UPDATE = os.environ.get("NOISYBENCH_UPDATE_GOLDEN") == "1"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with NOISYBENCH_UPDATE_GOLDEN=1 after checking the diff"


def _latex(store: Path, **kwargs) -> str:
    return make_report(store, ReportOptions(fmt="latex", **kwargs))[0]


def test_table_matches_golden(synthetic_store: Path) -> None:
    _golden("table.tex", _latex(synthetic_store, caption="CE, GCE and Co-teaching on small data."))


def test_standalone_matches_golden(synthetic_store: Path) -> None:
    _golden("standalone.tex", _latex(synthetic_store, standalone=True, label=None))


def test_leaky_metric_table_matches_golden(synthetic_store: Path) -> None:
    text = _latex(synthetic_store, metric="best", datasets=["mnist1d"])
    assert "\\emph{test-selected (leaky)}" in text and "not valid for ranking" in text
    _golden("leaky.tex", text)


def test_structure_conventions(synthetic_store: Path) -> None:
    text = _latex(synthetic_store)
    for piece in ["\\toprule", "\\midrule", "\\bottomrule", "\\cmidrule(lr){2-7} \\cmidrule(lr){8-9}",
                  "\\begin{tabular}{@{}lr@{}lr@{}lr@{}lr@{}l@{}}", "Method & \\multicolumn{2}{c}{Sym.~20\\,\\%}",
                  "\\multicolumn{6}{c}{Digits}", "co\\_teaching", "GCE &",
                  "\\textbf{84.67} & {\\scriptsize$\\pm$0.76}",
                  "\\underline{70.17} & {\\scriptsize$\\pm$1.26}$^{\\dagger}$",
                  "sample standard deviation", "$n = 3$ seeds", "Holm correction", "$\\alpha = 0.05$",
                  "(\\texttt{val})",
                  "%   \\usepackage{booktabs}"]:
        assert piece in text, piece
    assert "|" not in text.split("\\begin{tabular}")[1]
    caption = text.split("\\caption{")[1].split("\\label")[0]
    assert "ddof" not in caption and "provenance" not in caption and "suite" not in caption  # provenance: a comment
    assert "% Hyperparameter provenance: CE suite; co_teaching suite; GCE suite." in text
    assert "multirow" not in text  # the fragment needs only the packages its comment names


def test_escape() -> None:
    assert latex_escape("co_teaching 20% & #1 {x} ~ ^ $ \\") == (
        "co\\_teaching 20\\% \\& \\#1 \\{x\\} \\textasciitilde{} \\textasciicircum{} \\$ \\textbackslash{}")


def _pdflatex() -> str:
    exe = shutil.which("pdflatex")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is missing but CI is set: .ci/install-latex.sh should have installed it")
        pytest.skip("pdflatex not installed (run .ci/install-latex.sh)")
    return exe


def compile_tex(text: str, folder: Path) -> Path:
    """Compile ``text`` with pdflatex in ``folder``; fail with the log tail on error."""
    exe = _pdflatex()
    (folder / "doc.tex").write_text(text)
    proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    log = (folder / "doc.log").read_text(errors="replace")
    assert "Overfull" not in log and "Undefined control sequence" not in log
    return folder / "doc.pdf"


@pytest.mark.latex
def test_standalone_compiles(synthetic_store: Path, tmp_path: Path) -> None:
    pdf = compile_tex(_latex(synthetic_store, standalone=True), tmp_path)
    assert pdf.read_bytes().startswith(b"%PDF")


@pytest.mark.latex
def test_table_float_compiles_in_an_article(synthetic_store: Path, tmp_path: Path) -> None:
    body = _latex(synthetic_store, metric="best")
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{multirow}\n\\begin{document}\n" \
          f"{body}\n\\end{{document}}\n"
    assert compile_tex(doc, tmp_path).stat().st_size > 1000


def test_missing_pdflatex_fails_under_ci_and_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="pdflatex is missing but CI is set"):
        _pdflatex()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        _pdflatex()


def test_caption_escaped_seed_range_and_no_second_with_two_methods(tmp_path: Path) -> None:
    for method, seeds in {"ce": (1, 2), "gce": (1, 2, 3)}.items():
        for seed in seeds:
            write_run(tmp_path, method, "digits", "sym:0.2", seed, 80.0 + seed + (method == "gce"))
    text = _latex(tmp_path, caption="50% of 100_runs & more")
    caption = text.split("\\caption{")[1]
    assert caption.startswith("50\\% of 100\\_runs \\& more. ")
    assert "$n = 2$--$3$ seeds" in caption  # not $n = 2--3$, which prints as a double minus
    assert "\\underline" not in text and "second" not in caption  # two methods: no "second best"
    assert "$^{\\ddagger}$: not tested" in caption  # CE has 2 matched seeds


@pytest.mark.latex
@pytest.mark.parametrize("layout", ["wide", "long", "per-dataset"])
def test_every_layout_compiles_standalone(synthetic_store: Path, tmp_path: Path, layout: str) -> None:
    pdf = compile_tex(_latex(synthetic_store, standalone=True, layout=layout), tmp_path)
    assert pdf.read_bytes().startswith(b"%PDF")
