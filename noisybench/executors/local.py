"""The local executor: runs on this machine, in-process or in a pool of long-lived workers.

Each worker process runs many runs, so process start and ``import torch`` are paid once per
worker; workers exit by themselves when the driver dies.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path

from noisybench.config import RunConfig
from noisybench.progress import ProgressFn
from noisybench.registry import discover_modules
from noisybench.runner import RunRecord, execute_run


def _init_worker(driver: int | None = None) -> None:
    """Each run sets its own torch thread count (its recipe's ``threads``); workers only watch the driver."""
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
    """Run ``runs`` on this machine with ``workers`` long-lived processes (1: in-process)."""
    records: list[RunRecord] = []
    total = len(runs)
    if total == 0:
        return records
    if workers <= 1:
        for run in runs:
            records.append(execute_run(run, out_dir, retry_failed))
            if progress:
                progress(records[-1], len(records), total)
        return records
    context = multiprocessing.get_context("forkserver")
    plugins = [*discover_modules("noisybench.methods"), *discover_modules("noisybench.datasets")]
    context.set_forkserver_preload(["noisybench.trainer", *plugins])
    init = {"initializer": _init_worker, "initargs": (os.getpid(),)}
    with ProcessPoolExecutor(workers, mp_context=context, **init) as pool:
        futures: list[Future] = [pool.submit(execute_run, r.to_dict(), str(out_dir), retry_failed) for r in runs]
        for future in as_completed(futures):
            records.append(future.result())
            if progress:
                progress(records[-1], len(records), total)
    return records
