"""Figures of a report (matplotlib, Agg canvas only: no display, no pyplot global state).

- accuracy vs noise rate, one panel per (dataset, noise family);
- test accuracy over epochs per method (memorisation curves), one panel per setting;
- label-correction / clean-selection diagnostics over epochs, when the histories have them;
- the critical-difference diagram of the average ranks;
- per tuned method, the trials' noisy-validation accuracy against each tuned hyperparameter (``[tune]``).
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from noisybench.reporting.leaderboard import Leaderboard

#: History columns drawn as diagnostics when present (agreed names across methods).
DIAGNOSTICS = {
    "refined_acc": "refined-target accuracy (all samples)",
    "refined_acc_noisy": "refined-target accuracy (mislabelled samples)",
    "selected_frac": "fraction selected as clean",
    "select_precision": "clean-selection precision",
    "select_recall": "clean-selection recall",
}
#: Short y-axis names of the diagnostics (the long text is the title).
DIAGNOSTIC_AXES = {
    "refined_acc": "refined-target acc.", "refined_acc_noisy": "refined acc. (mislabelled)",
    "selected_frac": "fraction selected", "select_precision": "selection precision",
    "select_recall": "selection recall",
}
MAX_PANELS = 24
#: Fonts embedded as TrueType (Type 42), never Type 3: many venues reject Type 3 fonts in figures.
VENUE_RC = {"pdf.fonttype": 42, "ps.fonttype": 42}


@contextmanager
def venue_fonts() -> Iterator[None]:
    """Matplotlib settings for figures a venue accepts (TrueType fonts), only inside the ``with`` block."""
    with rc_context(VENUE_RC):
        yield


def figure_caption(stem: str, fig: Figure) -> str:
    """The caption a figure was made with (its label), else its file stem."""
    return fig.get_label() or stem


def _caption(fig: Figure, text: str, n_panels: int) -> None:
    """Title the figure with ``text`` wrapped to its width, and keep ``text`` as its caption (label)."""
    fig.suptitle(textwrap.fill(text, width=max(55, 48 * min(4, n_panels))), fontsize=11)
    fig.set_label(text)


def _legend_once(fig: Figure, axes: list, board: Leaderboard) -> None:
    """One figure legend below the panels, in the table's method order, with display names."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    order = [board.method_label(m) for m in board.methods]
    labels = [lab for lab in order if lab in handles] + [lab for lab in handles if lab not in order]
    if labels:
        fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center", ncols=min(len(labels), 6),
                   fontsize=8, frameon=False)


def new_figure(n_panels: int, width: float = 3.6, height: float = 2.8) -> tuple[Figure, list]:
    """A figure with an Agg canvas and ``n_panels`` axes on a grid of at most 4 columns."""
    cols = min(4, max(1, n_panels))
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _colors(methods: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def _noise_panel(ax, board: Leaderboard, cols: list, colors: dict) -> None:
    """One (dataset, family) panel: mean ± std against the rate, or per method when the family has one rate."""
    single = len(cols) == 1
    for i, m in enumerate(board.methods):
        dodge = 0.0 if single else 0.4 * (i - (len(board.methods) - 1) / 2)  # keeps error bars apart
        pts = [(i if single else c.rate * 100 + dodge, board.cell(m, c)) for c in cols if board.cell(m, c)]
        if not pts:
            continue
        ax.errorbar([p[0] for p in pts], [p[1].mean for p in pts], capsize=3, marker="o", ms=4,
                    yerr=[0.0 if math.isnan(p[1].std) else p[1].std for p in pts], label=board.method_label(m),
                    color=colors[m])
    if single:  # one rate: methods along x, so the spread does not read as different rates
        ax.set_xticks(range(len(board.methods)), [board.method_label(m) for m in board.methods], rotation=30,
                      fontsize=8)
        ax.set_xlim(-0.6, len(board.methods) - 0.4)
        ax.set_xlabel(f"method (noise rate {cols[0].rate * 100:g} %)")
    else:
        ax.set_xticks(sorted(c.rate * 100 for c in cols))
        ax.set_xlabel("noise rate (%)")


def accuracy_vs_noise(board: Leaderboard) -> Figure | None:
    """Mean ± std of the report metric against the noise rate, per dataset and noise family."""
    panels: dict[tuple[str, str], list] = {}
    for col in board.columns:
        if col.rate is not None and col.family:
            panels.setdefault((col.dataset, col.family), []).append(col)
    if not panels:
        return None
    fig, axes = new_figure(len(panels))
    colors = _colors(board.methods)
    for ax, cols in zip(axes, panels.values()):  # board.columns are in natural order already
        _noise_panel(ax, board, cols, colors)
        ax.set_title(f"{cols[0].dataset_label} — {cols[0].label.rsplit(' ', 2)[0]}", fontsize=10)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    _legend_once(fig, axes, board)
    caption = (f"Test accuracy ({board.metric_name}) against the noise rate: mean ± sample std over seeds, "
               "per dataset and noise family")
    _caption(fig, caption, len(axes))
    return fig


def _curve_panels(history: pd.DataFrame, board: Leaderboard, column: str, ylabel: str, title: str,
                  dotted: str | None = None) -> Figure | None:
    """One panel per setting, one line per method (mean ± std over seeds); ``dotted``: a second column, dotted."""
    if history.empty or column not in history.columns or history[column].isna().all():
        return None
    by_key = {c.key: c for c in board.columns}
    data = history[history[["dataset", "noise"]].apply(tuple, axis=1).isin(list(by_key)) & history[column].notna()]
    data = data[data["method"].isin(board.methods)]
    settings = [k for k in by_key if ((data["dataset"] == k[0]) & (data["noise"] == k[1])).any()][:MAX_PANELS]
    if not settings:
        return None
    fig, axes = new_figure(len(settings))
    colors = _colors(board.methods)
    for ax, key in zip(axes, settings):
        part = data[(data["dataset"] == key[0]) & (data["noise"] == key[1])]
        for method in [m for m in board.methods if (part["method"] == m).any()]:
            runs = part[part["method"] == method]
            _curve(ax, runs, column, colors[method], board.method_label(method))
            if dotted and dotted in runs.columns and runs[dotted].notna().any():
                _curve(ax, runs.dropna(subset=[dotted]), dotted, colors[method], "_nolegend_", ":")
        ax.set_title(f"{by_key[key].dataset_label} {by_key[key].label}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    _legend_once(fig, axes, board)
    _caption(fig, title, len(axes))
    return fig


def _curve(ax, runs: pd.DataFrame, column: str, color: tuple, label: str, style: str = "-") -> None:
    curve = runs.groupby("epoch")[column].agg(["mean", "std"])
    std = curve["std"].fillna(0.0).to_numpy()
    ax.plot(curve.index, curve["mean"], style, color=color, label=label)
    ax.fill_between(curve.index, curve["mean"] - std, curve["mean"] + std, color=color, alpha=0.15)


def memorization_curves(history: pd.DataFrame, board: Leaderboard) -> Figure | None:
    """Test accuracy per epoch, mean ± std over seeds, one line per method and one panel per setting."""
    return _curve_panels(history, board, "test_acc", "test accuracy (%)",
                         "Test accuracy over epochs (memorisation curves; mean ± std over seeds)")


def train_fit_curves(history: pd.DataFrame, board: Leaderboard) -> Figure | None:
    """Memorisation itself: how well each method fits the mislabelled training samples (their noisy label, solid)
    and the correctly labelled ones (dotted), per epoch; from ``train_fit_noisy`` / ``train_fit_clean``."""
    return _curve_panels(history, board, "train_fit_noisy", "train samples fitted (%)",
                         "Fit to the training labels over epochs: mislabelled samples predicted as their noisy "
                         "label (solid, memorisation) and clean samples (dotted); mean ± std over seeds",
                         dotted="train_fit_clean")


def diagnostic_curves(history: pd.DataFrame, board: Leaderboard) -> dict[str, Figure]:
    """One figure per diagnostic column present in the histories (see :data:`DIAGNOSTICS`)."""
    figures = {}
    for name, text in DIAGNOSTICS.items():
        title = f"{text[:1].upper()}{text[1:]} over epochs (mean ± std over seeds)"
        fig = _curve_panels(history, board, name, DIAGNOSTIC_AXES.get(name, text), title)
        if fig is not None:
            figures[f"diag_{name}"] = fig
    return figures


def cliques(ranks: dict[str, float], different: dict[frozenset, bool]) -> list[list[str]]:
    """Maximal runs of rank-ordered methods in which no pair differs significantly."""
    order = sorted(ranks, key=ranks.get)
    groups: list[list[str]] = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and not any(different[frozenset((order[a], order[j + 1]))] for a in range(i, j + 1)):
            j += 1
        if j > i and not any(i >= s and j <= e for s, e in [(order.index(g[0]), order.index(g[-1])) for g in groups]):
            groups.append(order[i:j + 1])
    return groups


#: Groupings a CD diagram can draw: Nemenyi (bars join ranks closer than the CD drawn) or Wilcoxon–Holm cliques.
CD_GROUPS = ("nemenyi", "wilcoxon")


def cd_groups(board: Leaderboard, how: str = "nemenyi") -> tuple[list[list[str]], str]:
    """Groups of methods joined by a bar, and the sentence saying what a bar means.

    ``nemenyi``: average ranks that differ by less than the critical difference (the same CD the diagram draws,
    so no bar can join two methods further apart than the CD). ``wilcoxon``: maximal runs with no pairwise
    Wilcoxon–Holm difference (drawn without a CD bar).
    """
    a = board.across
    assert a is not None
    if how == "wilcoxon":
        different = {frozenset((p["a"], p["b"])): bool(p["significant"]) for p in a.wilcoxon.pairs}
        return (cliques(a.ranks, different),
                f"bars: no significant difference (pairwise Wilcoxon signed-rank, Holm, α = {board.alpha:g})")
    assert a.cd is not None
    different = {frozenset((x, y)): abs(a.ranks[x] - a.ranks[y]) > a.cd for x in a.methods for y in a.methods
                 if x != y}
    return cliques(a.ranks, different), f"bars: average ranks closer than the Nemenyi CD (α = {board.alpha:g})"


def _rank_axis(ax, k: int) -> None:
    ax.set_xlim(0.5, k + 0.5)
    ax.axis("off")
    ax.hlines(0, 1, k, color="k", lw=1)
    for r in range(1, k + 1):
        ax.vlines(r, 0, 0.15, color="k", lw=1)
        ax.text(r, 0.3, str(r), ha="center", fontsize=9)


def cd_diagram(board: Leaderboard, how: str = "nemenyi") -> Figure | None:
    """Critical-difference diagram (Demšar 2006): average ranks on an axis and bars joining methods.

    ``how="nemenyi"`` (default) draws the Nemenyi CD and joins ranks closer than it; ``"wilcoxon"`` joins
    Wilcoxon–Holm cliques and draws no CD bar (needs the pairwise tests, i.e. 6 or more settings).
    """
    a = board.across
    if a is None or len(a.methods) < 3 or (how == "nemenyi" and a.cd is None) or \
            (how == "wilcoxon" and not a.wilcoxon.pairs):
        return None
    k = len(a.methods)
    groups, meaning = cd_groups(board, how)
    order = sorted(a.methods, key=a.ranks.get)
    fig = Figure(figsize=(7.0, 1.6 + 0.3 * k), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    half = math.ceil(k / 2)
    ax.set_ylim(-(max(half, k - half) + 1.5), 2.2)
    _rank_axis(ax, k)
    if how == "nemenyi":
        ax.hlines(1.3, 1, 1 + a.cd, color="k", lw=1.5)
        ax.vlines([1, 1 + a.cd], 1.2, 1.4, color="k", lw=1.5)
        ax.text(1 + a.cd / 2, 1.5, f"CD = {a.cd:.2f}", ha="center", fontsize=9)
    for i, m in enumerate(order):
        left = i < half
        level = -(i + 1) if left else -(k - i)
        x_text = 0.6 if left else k + 0.4
        ax.plot([a.ranks[m], a.ranks[m], x_text], [0, level, level], color="0.3", lw=0.8)
        ax.text(x_text, level, f"{board.method_label(m)} ({a.ranks[m]:.2f})", ha="right" if left else "left",
                va="center", fontsize=9)
    for g_i, group in enumerate(groups):
        y = -0.35 - 0.25 * g_i
        ax.hlines(y, a.ranks[group[0]] - 0.05, a.ranks[group[-1]] + 0.05, color="tab:red", lw=3)
    note = " — INDICATIVE (fewer than 6 settings)" if len(a.settings) < 6 else ""
    title = f"Average ranks over {len(a.settings)} settings ({board.metric_name}){note}; {meaning}"
    fig.suptitle(title.replace("; bars", ";\nbars"), fontsize=9)
    fig.set_label(title)
    return fig


def tuning_figures(board: Leaderboard) -> dict[str, Figure]:
    """Per tuned method, its trials' mean noisy-validation accuracy (over the tuning seeds) against each tuned
    hyperparameter, one colour per setting, the chosen trials starred; keyed ``tuning_<method>``."""
    summary = board.tuning
    if summary is None:
        return {}
    figures = {}
    for method in dict.fromkeys(s.method for s in summary.settings):
        space = {k: d for s in summary.settings if s.method == method for k, d in s.space.items()}
        points = [p for p in summary.points if p["method"] == method and p["mean_val"] is not None]
        if not space or not points:
            continue
        fig, axes = new_figure(len(space))
        settings = list(dict.fromkeys((p["dataset"], p["noise"]) for p in points))
        colors = _colors([f"{d} {n}" for d, n in settings])
        for ax, (name, dim) in zip(axes, sorted(space.items())):
            _tuning_panel(ax, name, dim, points, colors)
        handles = [fig.axes[0].scatter([], [], color=colors[f"{d} {n}"], s=14, label=f"{d} {n}") for d, n in settings]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=8, frameon=False)
        _caption(fig, f"{board.method_label(method)}: each trial's mean noisy-validation accuracy over the tuning "
                 "seeds against each tuned hyperparameter; star: the trial chosen in a setting", len(axes))
        figures[f"tuning_{method}"] = fig
    return figures


def _tuning_panel(ax, name: str, dim: dict, points: list[dict], colors: dict) -> None:
    """One hyperparameter: trials as dots (the chosen one starred), categories spread along x when not numeric."""
    values = [p["values"].get(name) for p in points]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    order = list(dict.fromkeys(map(str, values)))
    for p, value in zip(points, values):
        x = value if numeric else order.index(str(value))
        color = colors[f"{p['dataset']} {p['noise']}"]
        ax.scatter([x], [p["mean_val"]], color=color, s=70 if p["chosen"] else 14, marker="*" if p["chosen"] else "o",
                   edgecolors="black" if p["chosen"] else "none", linewidths=0.6, zorder=3 if p["chosen"] else 2)
    if numeric and dim.get("kind") == "log-uniform":
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log axis overlap
    elif numeric and all(isinstance(v, int) for v in values):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not numeric:
        ax.set_xticks(range(len(order)), order, fontsize=8)
    ax.set_xlabel(f"{name} {dim.get('range', '')}".strip(), fontsize=9)
    ax.set_ylabel("noisy-val acc. (%)")
    ax.grid(alpha=0.3)


def all_figures(board: Leaderboard, history: pd.DataFrame) -> dict[str, Figure]:
    """Every figure that applies, keyed by file stem."""
    figures: dict[str, Figure | None] = {
        "accuracy_vs_noise": accuracy_vs_noise(board),
        "memorization": memorization_curves(history, board),
        "memorization_train": train_fit_curves(history, board),
        **diagnostic_curves(history, board),
        "cd_diagram": cd_diagram(board),
        **tuning_figures(board),
    }
    return {k: v for k, v in figures.items() if v is not None}


def save_figures(figures: dict[str, Figure], out_dir: str | Path) -> list[Path]:
    """Write every figure as ``<stem>.png`` (150 dpi) and ``<stem>.pdf`` (TrueType fonts); return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with venue_fonts():
        for stem, fig in figures.items():
            for ext in ("png", "pdf"):
                path = out / f"{stem}.{ext}"
                fig.savefig(path, dpi=150, metadata=_metadata(ext))
                paths.append(path)
    return paths


def _metadata(ext: str) -> dict[str, str | None]:
    # Without fixed metadata the PDF carries a creation date, which makes output differ run to run.
    return {"CreationDate": None} if ext == "pdf" else {"Software": None}


def png_base64(fig: Figure, dpi: int = 110) -> str:
    """The figure as a base64 PNG string (for ``<img src="data:image/png;base64,...">``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


__all__ = ["CD_GROUPS", "DIAGNOSTICS", "VENUE_RC", "accuracy_vs_noise", "all_figures", "cd_diagram", "cd_groups",
           "cliques", "diagnostic_curves", "figure_caption", "memorization_curves", "png_base64", "save_figures",
           "train_fit_curves", "tuning_figures", "venue_fonts"]
