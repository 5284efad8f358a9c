"""The local executor: runs on this machine, in-process or in a pool of long-lived workers.

Each worker process runs many runs, so process start and ``import torch`` are paid once per
worker; workers exit by themselves when the driver dies.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from noisybench.config import RunConfig
from noisybench.interrupt import GridInterrupted, ignore_sigint, stop_on_sigint, stop_requested, use_flag
from noisybench.progress import ProgressFn
from noisybench.registry import importable_modules
from noisybench.runner import RunRecord, execute_run


def _init_worker(driver: int | None = None, stop: Any = None) -> None:
    """Workers ignore Ctrl-C (the driver decides), read the driver's stop flag and watch the driver;
    each run sets its own torch thread count (its recipe's ``threads``)."""
    ignore_sigint()  # the driver decides what a Ctrl-C means (noisybench.interrupt)
    if stop is not None:
        use_flag(stop)
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


def run_local(
    runs: list[RunConfig], out_dir: str | Path, workers: int = 1,
    retry_failed: bool = False, progress: ProgressFn | None = None,
) -> list[RunRecord]:
    """Run ``runs`` on this machine with ``workers`` long-lived processes (1: in-process).

    On Ctrl-C, stops as :mod:`noisybench.interrupt` describes and raises :class:`GridInterrupted`.
    """
    if not runs:
        return []
    if workers <= 1:
        return _run_in_process(runs, out_dir, retry_failed, progress)
    return _run_pool(runs, out_dir, workers, retry_failed, progress)


def _run_in_process(runs: list[RunConfig], out_dir: str | Path, retry_failed: bool,
                    progress: ProgressFn | None) -> list[RunRecord]:
    tally = _Tally(len(runs), progress)
    with stop_on_sigint():
        try:
            for run in runs:
                tally.add(execute_run(run, out_dir, retry_failed))
                if stop_requested():
                    break
        except KeyboardInterrupt:  # second Ctrl-C (or the grace ran out) inside a run
            tally.interrupted += 1
            raise tally.interruption() from None
        if stop_requested():
            raise tally.interruption()
    return tally.records


def _run_pool(runs: list[RunConfig], out_dir: str | Path, workers: int, retry_failed: bool,
              progress: ProgressFn | None) -> list[RunRecord]:
    context = multiprocessing.get_context("forkserver")
    plugins = [*importable_modules("noisybench.methods"), *importable_modules("noisybench.datasets")]
    context.set_forkserver_preload(["noisybench.trainer", *plugins])
    stop = context.Event()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(os.getpid(), stop))
    tally = _Tally(len(runs), progress)
    queue = [r.to_dict() for r in reversed(costliest_first(runs))]
    pending: set = set()
    try:
        with stop_on_sigint(stop):
            while queue or pending:
                while queue and len(pending) < workers and not stop.is_set():  # one run per free worker
                    pending.add(pool.submit(execute_run, queue.pop(), str(out_dir), retry_failed))
                if not pending:
                    break
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    tally.add(future.result())
            if stop.is_set():
                raise tally.interruption()
    except KeyboardInterrupt:  # second Ctrl-C, or runs in flight did not reach an epoch end in time
        tally.interrupted += len(pending)
        _kill_workers(pool)
        raise tally.interruption() from None
    finally:
        pool.shutdown(wait=not pending)
    return tally.records


def costliest_first(runs: list[RunConfig]) -> list[RunConfig]:
    """``runs`` ordered by their method's declared :attr:`~noisybench.method.Method.relative_cost`, costliest
    first (a stable sort: the plan's order otherwise), so that the pool's last runs are short ones."""
    from noisybench.registry import METHODS

    return sorted(runs, key=lambda run: -METHODS.get(run.method).relative_cost)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers now; their runs resume from their last checkpoint."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.kill()
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            process.join(timeout=2)


class _Tally:
    """The records of finished runs (reported to ``progress``) and the count of interrupted ones."""

    def __init__(self, total: int, progress: ProgressFn | None) -> None:
        self.total, self.progress = total, progress
        self.records: list[RunRecord] = []
        self.interrupted = 0

    def add(self, record: RunRecord) -> None:
        if record["status"] == "interrupted":
            self.interrupted += 1
        elif record["status"] != "cancelled":
            self.records.append(record)
            if self.progress:
                self.progress(record, len(self.records), self.total)

    def interruption(self) -> GridInterrupted:
        finished = sum(r["status"] in ("done", "failed") for r in self.records)
        return GridInterrupted(finished, self.interrupted, self.total - len(self.records) - self.interrupted)
