"""Backwards-compatible entry point of the reporting layer (see :mod:`noisybench.reporting`)."""

from __future__ import annotations

from pathlib import Path

from noisybench.reporting import ReportOptions, make_report


def render_report(out_dir: str | Path, fmt: str = "table", metric: str = "val") -> str:
    """Render the leaderboard of a results directory in ``fmt`` (see ``noisybench report --help``)."""
    text, _ = make_report(out_dir, ReportOptions(fmt=fmt, metric=metric))
    return text
