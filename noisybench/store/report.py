"""Reporting a results directory: load it from the store, then render it (see :mod:`noisybench.reporting`)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from noisybench.errors import NoisybenchError
from noisybench.store import ResultStore

if TYPE_CHECKING:
    from noisybench.reporting import Leaderboard, ReportOptions

#: Name of the closing leaderboard in the store's cache.
CLOSING_TABLE = "closing-table"


def report_dir(out_dir: str | Path, options: ReportOptions | None = None) -> tuple[str, Leaderboard | None]:
    """Load the runs of results directory ``out_dir`` and render them (:func:`make_report`)."""
    from noisybench.reporting import ReportOptions, check_options, make_report
    from noisybench.store.results import load_history, load_results

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
    from noisybench.reporting import ReportOptions

    text, _ = report_dir(out_dir, ReportOptions(fmt=fmt, metric=metric))
    return text


def closing_table(out_dir: str | Path, fingerprints: Mapping[str, str], metric: str = "val") -> str | None:
    """The leaderboard table of the runs ``fingerprints`` names (run id -> current fingerprint digest) in
    ``out_dir``, or None when none of them is done.

    The table is a pure function of those runs' final records, their fingerprints, ``metric`` and the reporting
    code, so it is kept in the store's cache under a digest of them: rerunning an unchanged grid prints it
    without loading pandas or computing a statistic.
    """
    store = ResultStore(out_dir)
    key = _closing_key(store, fingerprints, metric, str(out_dir))
    text = store.cached_text(CLOSING_TABLE, key)
    if text is not None:
        return text
    from noisybench.reporting import ReportOptions, make_report
    from noisybench.store.results import load_results

    frame = load_results(out_dir)
    frame = frame[frame["run_id"].isin(list(fingerprints))]
    if not (frame["status"] == "done").any():
        return None
    text, _ = make_report(frame, ReportOptions(fmt="table", metric=metric), source=str(out_dir))
    with contextlib.suppress(OSError):  # a read-only store still gets its table
        store.cache_text(CLOSING_TABLE, key, text)
    return text


def _closing_key(store: ResultStore, fingerprints: Mapping[str, str], metric: str, source: str) -> str:
    h = hashlib.sha256(store.records_digest(sorted(fingerprints)).encode())
    for run_id in sorted(fingerprints):
        h.update(f"{run_id}={fingerprints[run_id]};".encode())
    h.update(f"\0{metric}\0{source}\0{_reporting_code_digest()}".encode())
    return h.hexdigest()


@lru_cache(maxsize=1)
def _reporting_code_digest() -> str:
    """Digest of the code that turns records into a table (read from the files: nothing is imported) and of the
    versions of the libraries it renders with."""
    from importlib.metadata import version

    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    files = [*sorted((package / "reporting").glob("*.py")),
             *(package / name for name in ("store/results.py", "store/report.py", "tuning/selection.py"))]
    for path in files:
        h.update(path.name.encode() + path.read_bytes())
    for dist in ("pandas", "numpy", "scipy", "tabulate"):
        h.update(f"{dist}={version(dist)}".encode())
    return h.hexdigest()

