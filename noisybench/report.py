"""Reporting a results directory: load it from the store, then render it (see :mod:`noisybench.reporting`)."""

from __future__ import annotations

from pathlib import Path

from noisybench.errors import NoisybenchError
from noisybench.reporting import Leaderboard, ReportOptions, check_options, make_report


def report_dir(out_dir: str | Path, options: ReportOptions | None = None) -> tuple[str, Leaderboard | None]:
    """Load the runs of results directory ``out_dir`` and render them (:func:`make_report`)."""
    from noisybench.results import load_history, load_results

    opts = options or ReportOptions()
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise NoisybenchError(f"results directory {str(out_dir)!r} is a file; give the folder made by "
                              "`noisybench run`")
    if not path.is_dir():
        raise NoisybenchError(f"results directory {str(out_dir)!r} does not exist")
    check_options(opts)  # bad flags fail before the store is read
    needs_history = opts.fmt == "html" or bool(opts.plots_dir)
    history = load_history(out_dir) if needs_history else None
    return make_report(load_results(out_dir), opts, history, str(out_dir))


def render_report(out_dir: str | Path, fmt: str = "table", metric: str = "val") -> str:
    """Render the leaderboard of a results directory in ``fmt`` (see ``noisybench report --help``)."""
    text, _ = report_dir(out_dir, ReportOptions(fmt=fmt, metric=metric))
    return text
