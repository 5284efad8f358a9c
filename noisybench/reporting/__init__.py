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
#: statistics; ``csv-wide``: one row per method, mean/std/n columns per setting; ``tuning``: how a grid's ``[tune]``
#: stage chose each method's values (budgets, chosen values, best and worst trial, compute).
FORMATS = ("table", "md", "csv", "csv-long", "csv-wide", "json", "latex", "html", "tuning")
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
    layout: str = "wide"
    width: str | None = None
    float_env: str = "table"
    published: bool = True
    plots_dir: str | Path | None = None
    saved: list[Path] = field(default_factory=list)


def make_report(
    frame: pd.DataFrame, options: ReportOptions | None = None, history: pd.DataFrame | None = None,
    source: str = "",
) -> tuple[str, Leaderboard | None]:
    """Render the report of the runs in ``frame``; return ``(text, leaderboard)``.

    ``frame`` is :func:`noisybench.store.results.load_results` (one row per run, with ``finished_at``);
    ``history`` (:func:`noisybench.store.results.load_history`) feeds the figures of the HTML report and
    of ``options.plots_dir``, where every figure is written as PNG and PDF (paths in
    ``options.saved``). ``csv`` returns the per-run table and no leaderboard. ``source`` names
    the results in messages and the HTML title.
    """
    opts = options or ReportOptions()
    if opts.fmt not in FORMATS:
        raise NoisybenchError(f"unknown report format {opts.fmt!r}.{suggest(opts.fmt, FORMATS)} "
                              f"Choose from: {', '.join(FORMATS)}")
    check_options(opts)
    if opts.fmt == "csv":
        return frame.drop(columns=["hparams"]).to_csv(index=False), None
    if frame.empty:
        raise NoisybenchError(f"no finished runs in {source!r}; run `noisybench run GRID --out {source}` first")
    if opts.fmt == "tuning":
        return _tuning_report(frame, opts), None
    board = build_leaderboard(frame, opts.metric, opts.alpha, opts.datasets, opts.noises, opts.methods, opts.published)
    figures = {}
    if opts.fmt == "html" or opts.plots_dir:
        from noisybench.reporting.plots import all_figures, save_figures

        figures = all_figures(board, history if history is not None else pd.DataFrame())
        if opts.plots_dir:
            opts.saved = save_figures(figures, opts.plots_dir)
    return _render(board, opts, figures, source), board


def check_options(opts: ReportOptions) -> None:
    """Refuse a bad layout, float or ``--plots`` folder before any work."""
    from noisybench.reporting.latex import FLOATS, LAYOUTS

    if opts.layout not in LAYOUTS:
        raise NoisybenchError(f"--layout {opts.layout!r}: choose from {', '.join(LAYOUTS)}")
    if opts.float_env not in FLOATS:
        raise NoisybenchError(f"--float {opts.float_env!r}: choose from {', '.join(FLOATS)}")
    if opts.plots_dir:
        check_output_dir(Path(opts.plots_dir), "--plots")


def check_output_dir(folder: Path, option: str) -> None:
    """Create ``folder`` (its parent must exist) or raise a one-line error naming ``option`` and the fix."""
    if folder.exists() and not folder.is_dir():
        raise NoisybenchError(f"{option} {str(folder)!r} is an existing file; give a directory for the figures")
    if not folder.parent.is_dir():
        raise NoisybenchError(f"{option} {str(folder)!r}: parent directory {str(folder.parent)!r} does not exist; "
                              "create it first")
    try:
        folder.mkdir(exist_ok=True)
        probe = folder / ".noisybench-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise NoisybenchError(f"{option} {str(folder)!r} is not writable ({exc.strerror or exc}); "
                              "choose a folder you can write to") from None


def _tuning_report(frame: pd.DataFrame, opts: ReportOptions) -> str:
    """``--format tuning``: the trial runs of ``frame`` (its selected datasets, noise settings and methods)."""
    from noisybench.reporting.leaderboard import filter_runs
    from noisybench.reporting.tuning import render_tuning, split_trials, summarize

    _, trials = split_trials(filter_runs(frame[frame["status"].isin(("done", "failed"))], opts.datasets, opts.noises,
                                         opts.methods))
    names = dict(zip(frame["method"], frame.get("method_display", frame["method"])))
    return render_tuning(summarize(trials), lambda m: names.get(m) or m)


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
        from noisybench.reporting.latex import LatexOptions, render_latex

        return render_latex(board, LatexOptions(opts.caption, opts.label, opts.standalone, opts.layout, opts.width,
                                                opts.float_env))
    from noisybench.reporting.html import render_html

    return render_html(board, figures, source)


__all__ = ["FORMATS", "Leaderboard", "ReportOptions", "build_leaderboard", "check_output_dir", "make_report"]
