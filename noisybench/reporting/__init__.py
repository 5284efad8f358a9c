"""The reporting layer: significance-tested leaderboards in every format, figures, published numbers.

Entry point: :func:`make_report` (used by ``noisybench report``). The pieces:
:mod:`~noisybench.reporting.leaderboard` (the model), :mod:`~noisybench.reporting.stats`,
:mod:`~noisybench.reporting.guardrails`, :mod:`~noisybench.reporting.published`, renderers in
:mod:`~noisybench.reporting.formats`, :mod:`~noisybench.reporting.latex`, :mod:`~noisybench.reporting.html`,
and :mod:`~noisybench.reporting.plots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from noisybench.errors import NoisybenchError, suggest
from noisybench.reporting.leaderboard import Leaderboard, build_leaderboard

#: ``--format`` choices. ``csv``: one row per run (long); ``csv-long``: one row per method x setting cell with its
#: statistics; ``csv-wide``: one row per method, mean/std/n columns per setting.
FORMATS = ("table", "md", "csv", "csv-long", "csv-wide", "json", "latex", "html")
#: Formats whose text already contains the guardrail warnings.
EMBEDS_WARNINGS = {"table", "md", "json", "html"}


@dataclass
class ReportOptions:
    """Options of :func:`make_report` (the ``noisybench report`` flags)."""

    fmt: str = "table"
    metric: str = "val"
    alpha: float = 0.05
    datasets: Sequence[str] | None = None
    noises: Sequence[str] | None = None
    methods: Sequence[str] | None = None
    caption: str | None = None
    label: str | None = "tab:noisybench"
    standalone: bool = False
    published: bool = True
    plots_dir: str | Path | None = None
    saved: list[Path] = field(default_factory=list)


def make_report(out_dir: str | Path, options: ReportOptions | None = None) -> tuple[str, Leaderboard | None]:
    """Render the report of results directory ``out_dir``; return ``(text, leaderboard)``.

    With ``options.plots_dir`` every figure is also written there as PNG and PDF (paths in ``options.saved``).
    ``csv`` returns the per-run table and no leaderboard.
    """
    from noisybench.results import load_history, load_results

    opts = options or ReportOptions()
    if opts.fmt not in FORMATS:
        raise NoisybenchError(f"unknown report format {opts.fmt!r}.{suggest(opts.fmt, FORMATS)} "
                              f"Choose from: {', '.join(FORMATS)}")
    if not Path(out_dir).is_dir():
        raise NoisybenchError(f"results directory {str(out_dir)!r} does not exist")
    frame = load_results(out_dir)
    if opts.fmt == "csv":
        return frame.drop(columns=["hparams"]).to_csv(index=False), None
    if frame.empty:
        raise NoisybenchError(f"no finished runs in {str(out_dir)!r}; run `noisybench run GRID --out {out_dir}` first")
    frame = _with_finish_times(frame, out_dir)
    board = build_leaderboard(frame, opts.metric, opts.alpha, opts.datasets, opts.noises, opts.methods, opts.published)
    figures = {}
    if opts.fmt == "html" or opts.plots_dir:
        from noisybench.reporting.plots import all_figures, save_figures

        figures = all_figures(board, load_history(out_dir))
        if opts.plots_dir:
            opts.saved = save_figures(figures, opts.plots_dir)
    return _render(board, opts, figures, str(out_dir)), board


def _with_finish_times(frame: pd.DataFrame, out_dir: str | Path) -> pd.DataFrame:
    """Add ``finished_at`` (ISO time from each result.json) so superseded duplicate runs can be told apart."""
    from noisybench.store import ResultStore

    store = ResultStore(out_dir)
    finished = [(store.result(r) or {}).get("finished_at", "") for r in frame["run_id"]]
    return frame.assign(finished_at=finished)


def _render(board: Leaderboard, opts: ReportOptions, figures: dict, source: str) -> str:
    from noisybench.reporting import formats

    if opts.fmt in ("table", "md"):
        return formats.render_text(board, opts.fmt)
    if opts.fmt == "csv-long":
        return formats.long_frame(board).to_csv(index=False)
    if opts.fmt == "csv-wide":
        return formats.wide_numbers(board).to_csv()
    if opts.fmt == "json":
        return formats.render_json(board)
    if opts.fmt == "latex":
        from noisybench.reporting.latex import render_latex

        return render_latex(board, opts.caption, opts.label, opts.standalone)
    from noisybench.reporting.html import render_html

    return render_html(board, figures, source)


__all__ = ["FORMATS", "Leaderboard", "ReportOptions", "build_leaderboard", "make_report"]
