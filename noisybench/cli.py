"""The ``noisybench`` command: run, report, list, status."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from noisybench.errors import NoisybenchError


def _cmd_run(args: argparse.Namespace) -> int:
    from noisybench.config import load_grid
    from noisybench.plan import expand_grid
    from noisybench.report import render_report
    from noisybench.runner import ProgressPrinter, pending_runs, run_local
    from noisybench.store import ResultStore

    grid = load_grid(args.grid)
    runs = expand_grid(grid)
    out = Path(args.out or Path("results") / grid.name)
    store = ResultStore(out)
    store.ensure_writable()
    todo = pending_runs(runs, store, args.retry_failed)
    workers = args.workers or os.cpu_count() or 1
    print(f"grid {grid.name!r}: {len(runs)} runs, {len(runs) - len(todo)} already finished, "
          f"{len(todo)} to run with {min(workers, max(1, len(todo)))} worker(s) -> {out}", file=sys.stderr)
    records = run_local(todo, out, workers=min(workers, max(1, len(todo))),
                        retry_failed=args.retry_failed, progress=ProgressPrinter())
    failed = sum(r["status"] == "failed" for r in records)
    print(render_report(out, "table", args.metric))
    return 1 if failed and args.strict else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from noisybench.report import render_report

    if not Path(args.dir).is_dir():
        raise NoisybenchError(f"results directory {args.dir!r} does not exist")
    text = render_report(args.dir, args.format, args.metric)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from noisybench import registry

    reg = {"methods": registry.METHODS, "datasets": registry.DATASETS,
           "noises": registry.NOISES, "models": registry.MODELS}[args.what]
    for name in reg.list(args.pattern):
        doc = (getattr(reg.get(name), "description", "") or (reg.get(name).__doc__ or "")).strip()
        print(f"{name:<16} {doc.splitlines()[0] if doc else ''}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from noisybench.store import ResultStore

    store = ResultStore(args.dir)
    if not store.runs.is_dir():
        raise NoisybenchError(f"{args.dir!r} holds no runs (expected a folder made by `noisybench run`)")
    counts = {"done": 0, "failed": 0, "unfinished": 0}
    failures = []
    for run_id in sorted(store.run_ids()):
        record = store.result(run_id)
        status = record.get("status", "unfinished") if record else "unfinished"
        counts[status] = counts.get(status, 0) + 1
        if status == "failed":
            failures.append((run_id, record.get("reason", "")))
    print("  ".join(f"{k}: {v}" for k, v in counts.items()))
    for run_id, reason in failures:
        print(f"failed {run_id}: {reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``noisybench`` command."""
    parser = argparse.ArgumentParser(prog="noisybench", description="Benchmarks for learning with noisy labels.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a grid file (skips finished runs, resumes interrupted ones)")
    run.add_argument("grid", help="grid file (TOML), e.g. benchmarks/quick.toml")
    run.add_argument("--out", help="output directory (default results/<grid name>)")
    run.add_argument("--workers", type=int, default=None, help="parallel local workers (default: CPU count)")
    run.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    run.add_argument("--metric", default="val", help="metric of the closing table (val|last|mean-last|best)")
    run.add_argument("--strict", action="store_true", help="exit 1 when any run failed")
    run.set_defaults(func=_cmd_run)
    rep = sub.add_parser("report", help="leaderboard of a results directory")
    rep.add_argument("dir")
    rep.add_argument("--format", default="table", choices=["table", "md", "csv"])
    rep.add_argument("--metric", default="val", help="val | last | mean-last | best (leaky)")
    rep.add_argument("-o", "--output", help="write to this file instead of stdout")
    rep.set_defaults(func=_cmd_report)
    lst = sub.add_parser("list", help="list registered plugins")
    lst.add_argument("what", choices=["methods", "datasets", "noises", "models"])
    lst.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. '*mix*'")
    lst.set_defaults(func=_cmd_list)
    st = sub.add_parser("status", help="done / failed / unfinished runs of a results directory")
    st.add_argument("dir")
    st.set_defaults(func=_cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print ``error: ...`` and exit 2."""
    args = build_parser().parse_args(argv)
    warnings.simplefilter("default")
    try:
        return int(args.func(args) or 0)
    except NoisybenchError as exc:
        print(f"noisybench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("noisybench: interrupted; finished runs are kept, rerun to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
