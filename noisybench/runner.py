"""Running resolved configurations: one run (:func:`execute_run`) and a local pool.

:func:`execute_run` is the unit of work for every backend: it skips a finished run, resumes an
interrupted one from its checkpoint, records a failure with its reason instead of raising, and
writes the final record last. The local backend keeps ``workers`` long-lived processes, each
running many runs, so process start and ``import torch`` are paid once per worker.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

from noisybench.claims import Claim, ClaimInfo, ClaimLostError, slurm_job_id, try_claim
from noisybench.config import RunConfig
from noisybench.store import RESULT, ResultStore

FINISHED = ("done", "failed")


@lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Versions, host and git commit recorded with every run."""
    import numpy
    import torch

    env = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "hostname": socket.gethostname(), "torch": torch.__version__, "numpy": numpy.__version__,
        "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(), "git_commit": _git_commit(),
    }
    try:
        from importlib.metadata import version

        env["noisybench"] = version("noisybench")
    except Exception:
        env["noisybench"] = None
    return env


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def execute_run(
    config: dict[str, Any] | RunConfig, out_dir: str | Path, retry_failed: bool = False,
    claim: bool = True, raise_errors: bool = False,
) -> dict[str, Any]:
    """Run one configuration into ``out_dir`` and return its final record.

    A finished run is returned as stored (a failed one is rerun only with ``retry_failed``).
    Exceptions inside training become a ``failed`` record with the reason (re-raised instead
    with ``raise_errors``, for debugging). With ``claim`` (the default) the run is first claimed
    atomically (:mod:`noisybench.claims`); when another live process holds it, nothing is
    trained and the returned record, not stored, has status ``running`` and the holder.
    """
    run = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    store = ResultStore(out_dir)
    previous = store.result(run.run_id)
    if previous and (previous.get("status") == "done" or not retry_failed):
        return previous
    if not claim:
        return _train(run, store, None, raise_errors)
    store.runs.mkdir(parents=True, exist_ok=True)
    held = try_claim(out_dir, run.run_id)
    if isinstance(held, ClaimInfo):
        return _busy_record(run, held)
    with held:
        latest = store.result(run.run_id)  # finished by another process before we claimed?
        if latest and (latest.get("status") == "done" or not retry_failed or latest != previous):
            return latest
        return _train(run, store, held, raise_errors)


def _busy_record(run: RunConfig, holder: ClaimInfo) -> dict[str, Any]:
    return {"run_id": run.run_id, "config": run.to_dict(), "status": "running",
            "reason": f"claimed by {holder.describe()}", "holder": holder.holder}


def _train(run: RunConfig, store: ResultStore, claim: Claim | None, raise_errors: bool) -> dict[str, Any]:
    from noisybench.trainer import Trainer

    folder = store.write_start(run.to_dict(), environment())
    checkpoint = folder / "checkpoint.pt"
    resumed = len(store.history(run.run_id)) if checkpoint.exists() else 0
    start = time.perf_counter()
    record: dict[str, Any] = {"run_id": run.run_id, "config": run.to_dict(), "host": socket.gethostname(),
                              "pid": os.getpid(), "slurm_job": slurm_job_id(), "resumed_from_epoch": resumed}
    delay = float(os.environ.get("NOISYBENCH_TEST_EPOCH_SLEEP", "0") or 0)

    def on_epoch(history: list[dict[str, Any]]) -> None:
        if claim is not None:
            claim.check()
        store.write_history(run.run_id, history)
        if delay:  # test hook: widens the window in which tests interrupt a run; math unchanged
            time.sleep(delay)

    try:
        out = Trainer(run, checkpoint=checkpoint, on_epoch=on_epoch).run()
        store.write_noise(run.run_id, out["noise"], out["noise_labels"])
        record.update(status="done", metrics=out["metrics"], noise=_noise_brief(out["noise"]))
    except ClaimLostError as exc:  # another process owns the run now: leave the store to it
        return {**record, "status": "running", "reason": str(exc)}
    except Exception as exc:  # recorded, never raised: the grid goes on
        if raise_errors:
            raise
        record.update(status="failed", reason=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=20))
    record["wall_time"] = time.perf_counter() - start
    record["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if claim is not None and not claim.owned():
        return {**record, "status": "running", "reason": "claim lost before the result was written"}
    store.write_result(record)
    if record["status"] == "done":
        checkpoint.unlink(missing_ok=True)
    return record


def _noise_brief(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "transition_counts"}


def execute_runs(configs: list[dict[str, Any]], out_dir: str, retry_failed: bool = False,
                 raise_errors: bool = False) -> list[dict[str, Any]]:
    """Run several configurations in this process (one array task, one pool task)."""
    return [execute_run(c, out_dir, retry_failed, raise_errors=raise_errors) for c in configs]


def pending_runs(runs: Iterable[RunConfig], store: ResultStore, retry_failed: bool = False) -> list[RunConfig]:
    """The runs without a final record (plus failed ones with ``retry_failed``)."""
    todo = []
    for run in runs:
        if not (store.run_dir(run.run_id) / RESULT).exists():  # a stat, not a parse: fast on big grids
            todo.append(run)
        elif retry_failed and store.status(run.run_id) == "failed":
            todo.append(run)
    return todo


def _init_worker(threads: int, driver: int | None = None) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    if driver is not None:
        threading.Thread(target=_exit_with_driver, args=(driver,), name="driver-watch", daemon=True).start()


def _exit_with_driver(driver: int, interval: float = 1.0) -> None:
    """Pool workers outlive a SIGKILLed driver (they are children of the forkserver): exit when
    the driver is gone. A run in flight is resumed from its checkpoint by the next ``run``."""
    while True:
        time.sleep(interval)
        try:
            os.kill(driver, 0)
        except ProcessLookupError:
            os._exit(3)
        except PermissionError:
            pass


ProgressFn = Callable[[dict[str, Any], int, int], None]


def run_local(
    runs: list[RunConfig], out_dir: str | Path, workers: int = 1,
    retry_failed: bool = False, progress: ProgressFn | None = None,
) -> list[dict[str, Any]]:
    """Run ``runs`` on this machine with ``workers`` long-lived processes (1: in-process)."""
    records: list[dict[str, Any]] = []
    total = len(runs)
    if total == 0:
        return records
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    if workers <= 1:
        for run in runs:
            records.append(execute_run(run, out_dir, retry_failed))
            if progress:
                progress(records[-1], len(records), total)
        return records
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["noisybench.trainer", "noisybench.methods", "noisybench.datasets"])
    init = {"initializer": _init_worker, "initargs": (threads, os.getpid())}
    with ProcessPoolExecutor(workers, mp_context=context, **init) as pool:
        futures: list[Future] = [pool.submit(execute_run, r.to_dict(), str(out_dir), retry_failed) for r in runs]
        for future in as_completed(futures):
            records.append(future.result())
            if progress:
                progress(records[-1], len(records), total)
    return records


class ProgressPrinter:
    """Prints ``[done/total] label status metric ETA`` lines to a stream."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()

    def __call__(self, record: dict[str, Any], done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (total - done)
        run = RunConfig.from_dict(record["config"])
        if record["status"] == "done":
            detail = f"val-selected {record['metrics']['val_selected']:.2f}"
        elif record["status"] == "running":
            detail = f"skipped: {record.get('reason', '')}"
        else:
            detail = record.get("reason", "")[:120]
        width = len(str(total))
        self.stream.write(
            f"[{done:>{width}}/{total}] {record['status']:<6} {run.label():<40} {detail}  "
            f"elapsed {_fmt(elapsed)}  ETA {_fmt(eta)}\n"
        )
        self.stream.flush()


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
