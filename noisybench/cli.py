"""The ``noisybench`` command: run, plan, report, list, status."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from noisybench.errors import NoisybenchError
from noisybench.orchestration.interrupt import GridInterrupted


def check_data_ready(runs: Sequence[Any]) -> None:
    """Call each distinct dataset's cheap ``check_ready`` (file existence) once."""
    from noisybench.data import create_dataset

    seen = set()
    for run in runs:
        key = (run.dataset.name, repr(sorted(run.dataset.params.items())), run.data_root)
        if key not in seen:
            seen.add(key)
            create_dataset(run.dataset.name, run.data_root, **run.dataset.params).check_ready()


def _cmd_run(args: argparse.Namespace) -> int:
    from noisybench.envvars import check_environment
    from noisybench.grid_checks import check_devices, check_label_files, naming
    from noisybench.plan import expand_grid
    from noisybench.store import ResultStore

    check_environment()  # a bad environment variable fails here, before anything is written
    grid = _load_grid(args.grid, args.data_dir)
    tuned = None
    if grid.tune is not None:  # two stages: the trials now, the evaluation once they have finished
        from noisybench.tuning.trials import plan_tuning

        tuned = plan_tuning(grid)
    runs = tuned.trial_runs() if tuned is not None else expand_grid(grid)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    _warn_broken_plugins(log)
    with naming(grid.source, "[grid] datasets"):
        check_data_ready(runs)  # missing data fails here, before any run is recorded as failed
    check_label_files(runs, grid.source)  # so do human:FILE label files that do not fit
    if args.executor != "slurm":
        check_devices(runs, grid.source)
    options = _slurm_options(args, grid)  # typos fail early
    out = Path(args.out or Path("results") / grid.name)
    store = ResultStore(out)
    store.ensure_writable()
    with _early_pool(args, runs, store) as pool:  # workers warm up while the plan is checked
        if tuned is not None:
            from noisybench.tuning.run import run_tuned

            stage = lambda runs, planned, expected, what: _run_stage(  # noqa: E731
                args, grid, runs, planned, expected, store, options, pool, what)
            return run_tuned(tuned, store, stage, lambda records, current: _closing_table(
                args, store.root, records, current), detach=args.detach, log=_log)
        return _plan_and_run(args, grid, runs, store, options, pool)


def _log(line: str) -> None:
    print(line, file=sys.stderr)


def _plan_and_run(args: argparse.Namespace, grid: Any, runs: list, store: Any, options: Any, pool: Any) -> int:
    from noisybench.orchestration.fingerprint import fingerprints

    expected = fingerprints(runs)
    records, decision = _run_stage(args, grid, runs, runs, expected, store, options, pool)
    if records is None:
        return 0
    return _closing_table(args, store.root, records, {r: expected[r] for r in decision.current})


def _run_stage(args: argparse.Namespace, grid: Any, runs: list, planned: list, expected: dict[str, str], store: Any,
               options: Any, pool: Any, what: str = "") -> tuple[list | None, Any]:
    """Record the plan (``planned``: every run of the grid known so far), decide which of ``runs`` to train, train
    them; returns the records (None when Slurm jobs were submitted detached) and the decision."""
    import hashlib

    from noisybench.orchestration.executors import ExecRequest, execute_plan
    from noisybench.orchestration.progress import ProgressPrinter
    from noisybench.orchestration.resume import select_runs

    out = store.root
    source = Path(grid.source).resolve()
    others = store.record_plan(grid.name, {r.run_id: r.label() for r in planned},
                               {r.run_id: expected[r.run_id] for r in planned}, str(source),
                               hashlib.sha256(source.read_bytes()).hexdigest())
    if others:
        _log(f"warning: grid name {grid.name!r} is also the name of {others[0]}, planned in {out}: both grids' runs "
             f"share this folder (reports of it show both); give this grid its own `name` to keep them apart")
    decision = select_runs(runs, store, {r.run_id: expected[r.run_id] for r in runs}, retry_failed=args.retry_failed,
                           rerun_stale=args.rerun_stale, keep_stale=args.keep_stale, force=_force_selection(args),
                           log=_log)
    stale = f", {len(decision.stale)} stale" if decision.stale else ""
    train_ids = {r.run_id for r in decision.train}
    kept_failed = 0 if args.retry_failed else sum(
        r.run_id not in train_ids and store.status(r.run_id) == "failed" for r in runs)
    failed_note = f" ({kept_failed} of them failed: rerun with --retry-failed)" if kept_failed else ""
    _log(f"grid {grid.name!r}{f' ({what})' if what else ''}: {len(runs)} runs, {decision.finished} already finished"
         f"{failed_note}{stale}, {len(decision.train)} to run")
    request = ExecRequest(args.executor, decision.train, out, grid.name, options, _workers(args),
                          args.retry_failed, args.detach, ProgressPrinter(), log=_log, pool=pool)
    return execute_plan(request), decision


def _load_grid(path: str, data_dir: str | None = None) -> Any:
    """The grid file, its data root resolved: ``--data-dir``, else the grid's ``[data] root``, else
    ``$NOISYBENCH_DATA``."""
    from noisybench.config import load_grid
    from noisybench.envvars import get

    grid = load_grid(path)
    if data_dir:
        grid.data_root = str(Path(data_dir).expanduser().resolve())
    elif grid.data_root is None:
        grid.data_root = get("NOISYBENCH_DATA")
    return grid


def _workers(args: argparse.Namespace) -> int:
    return args.workers or os.cpu_count() or 1


@contextlib.contextmanager
def _early_pool(args: argparse.Namespace, runs: list, store: Any) -> Iterator[Any]:
    """A local worker pool started now, so that its workers import and load the grid's data while the plan
    is checked; None for other executors, one worker, or a grid that looks finished (a stat per run)."""
    if args.executor != "local" or _workers(args) <= 1:
        yield None
        return
    likely = runs if (args.retry_failed or args.force or args.rerun_stale) else \
        [r for r in runs if not store.has_result(r.run_id)]
    if not likely:
        yield None
        return
    from noisybench.orchestration.executors.local import WorkerPool

    pool = WorkerPool(_workers(args), likely).start(min(_workers(args), len(likely)))
    try:
        yield pool
    except BaseException:
        pool.close(kill=True)
        raise
    pool.close()


def _slurm_options(args: argparse.Namespace, grid: Any) -> Any:
    from noisybench.orchestration.executors import SlurmOptions, parse_sbatch_flags

    overrides = {"partition": args.partition, "account": args.account, "qos": args.qos, "time": args.time,
                 "cpus": args.cpus, "gpus": args.gpus, "mem_gb": args.mem, "runs_per_task": args.runs_per_task,
                 "array_parallelism": args.array_parallelism}
    if args.sbatch:
        overrides["sbatch"] = {**grid.slurm.get("sbatch", {}), **parse_sbatch_flags(args.sbatch)}
    return SlurmOptions.from_sources(grid.slurm, overrides, where=f"{grid.source}: [slurm]")


def _force_selection(args: argparse.Namespace) -> Any:
    from noisybench.orchestration.resume import Selection

    if not args.force:
        if args.methods or args.datasets or args.noise:
            raise NoisybenchError("--methods/--datasets/--noise select runs for --force; add --force")
        return None
    return Selection(_split(args.methods), _split(args.datasets), _split(args.noise))


def _split(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def _closing_table(args: argparse.Namespace, out: Path, records: list, current: dict[str, str]) -> int:
    """Print the leaderboard of exactly this grid's current runs (not the whole store). Exit status 1 with
    ``--strict`` when any run of the grid is failed, whether it failed now or before."""
    from noisybench.store import ResultStore
    from noisybench.store.report import closing_table

    busy = sum(r["status"] == "running" for r in records)
    if busy:
        print(f"{busy} run(s) skipped: another process is training them (see `noisybench status {out}`)",
              file=sys.stderr)
    store = ResultStore(out)
    failed = sum(store.status(run_id) == "failed" for run_id in current)
    if failed:
        print(f"{failed} failed — `noisybench status {out}` shows why and where; after fixing, rerun with "
              "--retry-failed", file=sys.stderr)
    code = 1 if failed and args.strict else 0
    text = closing_table(out, current, args.metric)
    if text is None:
        print(f"no finished runs yet; follow with `noisybench status {out}`", file=sys.stderr)
        return code
    print(text)
    return code


def _cmd_plan(args: argparse.Namespace) -> int:
    from noisybench.plan import expand_grid, render_plan

    grid = _load_grid(args.grid)
    if grid.tune is not None:
        from noisybench.tuning.trials import plan_tuning, render_tuned_plan

        text = render_tuned_plan(plan_tuning(grid), args.format)
    else:
        text = render_plan(expand_grid(grid), args.format)
    _warn_broken_plugins(_log)
    sys.stdout.write(text)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from noisybench.reporting import EMBEDS_WARNINGS, ReportOptions
    from noisybench.store.report import report_dir

    split = lambda text: [p.strip() for p in text.split(",") if p.strip()] if text else None  # noqa: E731
    options = ReportOptions(fmt=args.format, metric=args.metric, alpha=args.alpha, datasets=split(args.datasets),
                            noises=split(args.noise), methods=split(args.methods), caption=args.caption,
                            label=args.label or None, standalone=args.standalone, layout=args.layout,
                            width=args.width, float_env=args.float, published=not args.no_published,
                            plots_dir=args.plots)
    if args.output:
        _check_output_file(Path(args.output))
    text, board = report_dir(args.dir, options)
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            raise NoisybenchError(f"-o {args.output!r}: cannot write ({exc.strerror or exc})") from None
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if options.saved:
        print(f"wrote {len(options.saved)} figure files to {args.plots}", file=sys.stderr)
    if board is not None and args.format not in EMBEDS_WARNINGS:
        for warning in board.warnings:
            print(f"noisybench: warning: {warning}", file=sys.stderr)
    return 0


def _check_output_file(path: Path) -> None:
    """``-o``: the folder must exist (it is never created) and the path must not be a folder."""
    if path.is_dir():
        raise NoisybenchError(f"-o {str(path)!r} is a directory; give a file name, e.g. {str(path / 'table.tex')!r}")
    if not path.parent.is_dir():
        raise NoisybenchError(f"-o {str(path)!r}: directory {str(path.parent)!r} does not exist; create it first "
                              "(it is not created for you)")


def _cmd_list(args: argparse.Namespace) -> int:
    from noisybench.plugins import load_environment_plugins
    from noisybench.registry import REGISTRIES

    reg = REGISTRIES[args.what]
    load_environment_plugins()
    for name in reg.list(args.pattern):
        doc = (getattr(reg.get(name), "description", "") or (reg.get(name).__doc__ or "")).strip()
        print(f"{name:<16} {reg.origin(name).describe():<34} {doc.splitlines()[0] if doc else ''}")
    for broken in reg.broken(args.pattern):
        print(f"{broken.name:<16} {'BROKEN':<34} {broken.where()}: {broken.error}")
    return 0


def _warn_broken_plugins(log: Any) -> None:
    """One line per plugin that failed to load (grids that do not use it run; those that do are refused)."""
    from noisybench.registry import REGISTRIES

    for registry in REGISTRIES.values():
        for broken in registry.broken():
            log(f"noisybench: warning: {broken.kind} plugin {broken.name!r} failed to load ({broken.where()}: "
                f"{broken.error}); grids that use it are refused")


def _cmd_status(args: argparse.Namespace) -> int:
    from noisybench.orchestration.executors.slurm import queued_runs
    from noisybench.store import ResultStore
    from noisybench.store.status import STATES, store_status

    if not ResultStore(args.dir).exists():
        raise NoisybenchError(f"{args.dir!r} holds no runs (expected a folder made by `noisybench run`)")
    show = STATES if args.all else ("failed", "running")
    sys.stdout.write(store_status(args.dir, queued=None if args.no_slurm else queued_runs).render(show))
    return 0


def _cmd_check_method(args: argparse.Namespace) -> int:
    from noisybench.conformance import check_method
    from noisybench.registry import METHODS

    METHODS.get(args.name)  # an unknown name fails here, with suggestions
    if args.epochs < 2:
        raise NoisybenchError(f"--epochs {args.epochs}: the resume check needs at least 2 epochs")
    hparams = _key_values(args.hparam, "--hparam")
    print(f"checking method {args.name!r} on tiny blobs ({args.epochs} epochs, CPU): determinism, "
          "exact resume, complete history, search space, reference functions", file=sys.stderr)
    results = check_method(args.name, hparams, args.epochs)
    for result in results:
        print(result.render())
    failed = [r.name for r in results if not r.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


def _key_values(items: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` options, each VALUE read as JSON when it parses (``0.5``, ``true``), else a string."""
    import json

    values: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise NoisybenchError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            values[key] = json.loads(value)
        except json.JSONDecodeError:
            values[key] = value
    return values


def _cmd_data_check(args: argparse.Namespace) -> int:
    from noisybench.data.check import check_dataset
    from noisybench.envvars import get

    params = _key_values(args.param, "--param")
    report = check_dataset(args.name, args.data_dir or get("NOISYBENCH_DATA"), **params)
    print(report.render())
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``noisybench`` command."""
    parser = argparse.ArgumentParser(prog="noisybench", description="Benchmarks for learning with noisy labels.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a grid file (skips finished runs, resumes interrupted ones)")
    run.add_argument("grid", help="grid file (TOML), e.g. benchmarks/quick.toml")
    run.add_argument("--out", help="output directory (default results/<grid name>)")
    run.add_argument("--workers", type=int, default=None, help="parallel local workers (default: CPU count)")
    run.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    run.add_argument("--rerun-stale", action="store_true",
                     help="rerun finished runs whose code or input files changed since they ran (old folders kept)")
    run.add_argument("--keep-stale", action="store_true", help="count stale runs as finished (reports mark them)")
    run.add_argument("--force", action="store_true",
                     help="rerun the finished runs selected by --methods/--datasets/--noise (all without them)")
    run.add_argument("--methods", help="with --force: comma-separated method patterns")
    run.add_argument("--datasets", help="with --force: comma-separated dataset patterns")
    run.add_argument("--noise", help="with --force: comma-separated noise patterns, e.g. 'sym:*'")
    run.add_argument("--metric", default="val", help="metric of the closing table (val|last|mean-last|best)")
    run.add_argument("--strict", action="store_true", help="exit 1 when any run of the grid is failed at the end")
    run.add_argument("--data-dir", help="data root of real datasets (default: the grid's [data] root, else "
                     "$NOISYBENCH_DATA)")
    run.add_argument("--executor", default="local", choices=["local", "slurm", "debug"],
                     help="local worker pool (default), Slurm job arrays via submitit, or in-process with pdb")
    run.add_argument("--detach", action="store_true", help="slurm: submit and return without waiting")
    slurm = run.add_argument_group("slurm (override the grid's [slurm] table)")
    slurm.add_argument("--partition")
    slurm.add_argument("--account")
    slurm.add_argument("--qos")
    slurm.add_argument("--time", help="time limit per array task, as sbatch reads --time: MM, MM:SS, HH:MM:SS, "
                       "D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED (default 60)")
    slurm.add_argument("--cpus", type=int, help="CPUs per array task (torch threads: [train] threads; default 1)")
    slurm.add_argument("--gpus", type=int, help="GPUs per run (default 0)")
    slurm.add_argument("--mem", type=float, help="memory per run in GB")
    slurm.add_argument("--array-parallelism", type=int, help="array tasks running at once (default 64)")
    slurm.add_argument("--runs-per-task", type=int, help="runs per array task (default: automatic)")
    slurm.add_argument("--sbatch", action="append", metavar="KEY=VALUE",
                       help="extra sbatch flag, repeatable: --sbatch constraint=volta --sbatch exclusive")
    run.set_defaults(func=_cmd_run)
    pln = sub.add_parser("plan", help="show every run's protocol, recipe and hyperparameters (with provenance) "
                                      "without training or reading data")
    pln.add_argument("grid", help="grid file (TOML)")
    pln.add_argument("--format", default="table", choices=["table", "json"])
    pln.set_defaults(func=_cmd_plan)
    rep = sub.add_parser("report", help="leaderboard of a results directory")
    rep.add_argument("dir")
    rep.add_argument("--format", default="table",
                     choices=["table", "md", "csv", "csv-long", "csv-wide", "json", "latex", "html", "tuning"],
                     help="csv: one row per run; csv-long: one row per method x setting with statistics; "
                          "csv-wide: one row per method; tuning: how [tune] chose each method's values "
                          "(default table)")
    rep.add_argument("--metric", default="val", help="val | last | mean-last | best (leaky, test-selected) | clean-val")
    rep.add_argument("-o", "--output", help="write to this file instead of stdout")
    rep.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    rep.add_argument("--datasets", help="comma-separated dataset patterns, e.g. 'cifar10,mnist*'")
    rep.add_argument("--noise", help="comma-separated noise setting patterns, e.g. 'sym:*,asym:0.4'")
    rep.add_argument("--methods", help="comma-separated method patterns (rows)")
    rep.add_argument("--caption", help="latex: caption text placed before the generated legend (plain text; "
                                        "LaTeX's special characters are escaped)")
    rep.add_argument("--layout", default="wide", choices=["wide", "long", "per-dataset"],
                     help="latex: settings as columns (wide, default), as rows under dataset headings (long), "
                          "or one table per dataset")
    rep.add_argument("--width", metavar="LENGTH",
                     help="latex: scale the table down to at most this width, e.g. '\\linewidth' (needs graphicx)")
    rep.add_argument("--float", default="table", choices=["table", "table*"],
                     help="latex: float environment; table* spans both columns of a two-column paper")
    rep.add_argument("--label", default="tab:noisybench", help="latex: \\label of the table ('' for none)")
    rep.add_argument("--standalone", action="store_true", help="latex: a compilable standalone document")
    rep.add_argument("--plots", metavar="DIR", help="also write every figure to DIR as PNG and PDF")
    rep.add_argument("--no-published", action="store_true", help="do not show published numbers beside ours")
    rep.set_defaults(func=_cmd_report)
    lst = sub.add_parser("list", help="list registered plugins")
    lst.add_argument("what", choices=["methods", "datasets", "noises", "models"])
    lst.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. '*mix*'")
    lst.set_defaults(func=_cmd_list)
    st = sub.add_parser("status", help="done / running / queued / failed / pending runs of a results directory")
    st.add_argument("dir")
    st.add_argument("--all", action="store_true", help="list every run, not only failed and running ones")
    st.add_argument("--no-slurm", action="store_true", help="do not ask squeue which runs are queued")
    st.set_defaults(func=_cmd_status)
    chm = sub.add_parser("check-method", help="conformance checks of an installed method (for plugin authors)")
    chm.add_argument("name", help="registered method name, e.g. elr or your plugin's")
    chm.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE",
                     help="hyperparameter override, repeatable: --hparam beta=0.9")
    chm.add_argument("--epochs", type=int, default=3, help="epochs of each probe run (default 3, at least 2)")
    chm.set_defaults(func=_cmd_check_method)
    data = sub.add_parser("data", help="dataset utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    chk = data_sub.add_parser("check", help="verify a dataset on disk: layout, counts, checksums, human labels")
    chk.add_argument("name", help="dataset name, e.g. cifar10n")
    chk.add_argument("--data-dir", help="data root (default: $NOISYBENCH_DATA)")
    chk.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="dataset parameter, e.g. --param label_file=/path/CIFAR-10_human.pt")
    chk.set_defaults(func=_cmd_data_check)
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
    except GridInterrupted as exc:
        print(f"noisybench: interrupted: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("noisybench: interrupted; finished runs are kept, rerun to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
