"""The local executor: runs on this machine, in-process or in a pool of long-lived workers.

Each worker is a process of its own, forked from a server process that has imported torch and the
plugins, with a pipe of its own to the driver; it runs many runs, so process start and imports are
paid once per worker. A worker warms up as soon as it starts, while the driver is still checking
the plan: it loads each dataset of the grid (kept for its runs) and pays torch's lazy imports, so
its first run costs what the later ones cost.

Before each run a worker tells the driver which run it starts. A worker that dies (killed, out of
memory, a crash in native code) is so tied to its run, which is recorded as failed with the
signal ("worker died: signal 9 (SIGKILL)"); a fresh worker takes its place and the grid goes on,
while the other workers' runs carry on undisturbed. Workers exit by themselves when the driver dies.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from noisybench.config import RunConfig
from noisybench.errors import NoisybenchError
from noisybench.orchestration.interrupt import GridInterrupted, ignore_sigint, stop_on_sigint, stop_requested, use_flag
from noisybench.orchestration.progress import ProgressFn
from noisybench.orchestration.runner import RunRecord, execute_run, record_lost_run
from noisybench.registry import importable_modules

#: Most datasets a worker prepares while warming up (the per-process data cache holds eight).
WARM_DATASETS = 8


def run_local(
    runs: list[RunConfig], out_dir: str | Path, workers: int = 1,
    retry_failed: bool = False, progress: ProgressFn | None = None, pool: WorkerPool | None = None,
) -> list[RunRecord]:
    """Run ``runs`` on this machine with ``workers`` long-lived processes (1: in-process).

    ``pool``, a :class:`WorkerPool` started earlier (warming up while the plan was checked), is used
    when given. On Ctrl-C, stops as :mod:`noisybench.orchestration.interrupt` describes and raises
    :class:`GridInterrupted`. A store that cannot be written (:class:`~noisybench.store.StoreWriteError`)
    stops the grid: no further run starts, runs in flight finish, then the error is raised.
    """
    if not runs:
        return []
    if pool is None and workers <= 1:
        return _run_in_process(runs, out_dir, retry_failed, progress)
    own = pool is None
    pool = pool or WorkerPool(workers, runs).start()
    try:
        return pool.run(runs, out_dir, retry_failed, progress)
    finally:
        if own:
            pool.close()


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


@dataclass
class _Worker:
    """One worker process, its pipe, and the run it was given (None: idle)."""

    process: Any
    conn: Connection
    task: dict[str, Any] | None = None
    started: bool = False  # the worker said it started ``task``

    def alive(self) -> bool:
        return self.process.exitcode is None


@dataclass
class _Outcome:
    """What the pool's loop has learned: a failure that stops the grid, deaths before any run."""

    failure: BaseException | None = None
    idle_deaths: int = 0


class WorkerPool:
    """Long-lived worker processes, each with its own pipe; a dead one is replaced (see the module docstring).

    Parameters
    ----------
    size
        Most workers; :meth:`start` starts this many unless told fewer.
    warm
        Runs whose datasets (the first :data:`WARM_DATASETS` distinct ones) each worker prepares at start.
    """

    def __init__(self, size: int, warm: Sequence[RunConfig] = ()) -> None:
        self.size = max(1, size)
        self._wanted = self.size
        self._context = multiprocessing.get_context("forkserver")
        plugins = [*importable_modules("noisybench.methods"), *importable_modules("noisybench.datasets")]
        self._context.set_forkserver_preload(["noisybench.orchestration.runner", "noisybench.trainer",
                                              "noisybench.orchestration.fingerprint", *plugins])
        self.stop = self._context.Event()
        self._warm = warm_specs(warm)
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []  # let go (fewer runs than workers); joined on close
        self._closing = False
        self._lock = threading.Lock()
        self._starter: threading.Thread | None = None
        self._start_error: BaseException | None = None
        #: run id -> [driver time the worker started it, driver time its record came back] (perf_counter)
        self.timings: dict[str, list[float]] = {}
        #: seconds each worker spent warming up, as they report it
        self.warm_seconds: list[float] = []

    def start(self, count: int | None = None) -> WorkerPool:
        """Start ``count`` workers (default :attr:`size`) from a background thread and return at once (they
        warm up meanwhile)."""
        self._wanted = min(self.size, count or self.size)
        self._starter = threading.Thread(target=self._spawn, name="noisybench-pool-start", daemon=True)
        self._starter.start()
        return self

    def _spawn(self) -> None:
        try:
            while len(self._workers) < self._wanted and not self._closing:
                worker = self._new_worker()
                with self._lock:
                    if not self._closing:
                        self._workers.append(worker)
                        continue
                self._stop_all([worker], kill=True)  # closed while this one started: not wanted any more
                return
        except BaseException as exc:  # raised again where the workers are needed
            self._start_error = exc

    def _new_worker(self) -> _Worker:
        mine, theirs = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(theirs, os.getpid(), self.stop, self._warm),
                                        name="noisybench-worker")
        process.start()
        theirs.close()
        return _Worker(process, mine)

    def _ready(self, runs: int) -> None:
        """Wait for the start, then hold one worker per run up to :attr:`size` (let extra ones go)."""
        if self._starter is None:
            self.start(runs)
        assert self._starter is not None
        self._starter.join()
        if self._start_error is not None:
            raise self._start_error
        want = min(self.size, max(1, runs))
        while len(self._workers) < want:
            self._workers.append(self._new_worker())
        for extra in self._workers[want:]:
            self._let_go(extra)
        self._idle += self._workers[want:]
        del self._workers[want:]

    def run(self, runs: Sequence[RunConfig], out_dir: str | Path, retry_failed: bool = False,
            progress: ProgressFn | None = None) -> list[RunRecord]:
        """Train ``runs`` (costliest first) on the workers; see :func:`run_local`."""
        self._ready(len(runs))
        tally, outcome = _Tally(len(runs), progress), _Outcome()
        queue = [r.to_dict() for r in reversed(costliest_first(list(runs)))]
        try:
            with stop_on_sigint(self.stop):
                while self._step(queue, str(out_dir), retry_failed, tally, outcome):
                    pass
                stopped = self.stop.is_set()
        except KeyboardInterrupt:  # second Ctrl-C, or runs in flight did not reach an epoch end in time
            tally.interrupted += sum(w.task is not None for w in self._workers)
            self.close(kill=True)
            raise tally.interruption() from None
        if outcome.failure is not None:
            raise outcome.failure
        if stopped:
            raise tally.interruption()
        return tally.records

    def _step(self, queue: list[dict[str, Any]], out_dir: str, retry_failed: bool, tally: _Tally,
              outcome: _Outcome) -> bool:
        """Hand out runs to idle workers, then wait a little for news; False when nothing is left to wait for."""
        halted = self.stop.is_set() or outcome.failure is not None
        for i, worker in enumerate(self._workers):
            if worker.task is None and queue and not halted:
                if not worker.alive():
                    worker = self._replace(i, worker, outcome)
                self._give(worker, queue.pop(), out_dir, retry_failed, queue)
        busy = [w for w in self._workers if w.task is not None]
        if not busy:
            return False
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=0.5))
        for i, worker in enumerate(self._workers):
            if worker.task is None:
                continue
            if worker.conn in ready and self._read(worker, tally, outcome):
                continue
            if worker.process.sentinel in ready or not worker.alive():
                self._bury(i, worker, out_dir, tally, outcome, queue)
        return True

    def _give(self, worker: _Worker, task: dict[str, Any], out_dir: str, retry_failed: bool,
              queue: list[dict[str, Any]]) -> None:
        try:
            worker.conn.send((task, out_dir, retry_failed))
        except OSError:  # died while idle: the next step replaces it and hands the run out again
            queue.append(task)
            return
        worker.task, worker.started = task, False

    def _read(self, worker: _Worker, tally: _Tally, outcome: _Outcome) -> bool:
        """Read every message the worker sent; False when its pipe is closed (it died)."""
        try:
            while worker.conn.poll():
                kind, payload = worker.conn.recv()
                if kind == "started":
                    worker.started = True
                    self.timings[payload] = [time.perf_counter()]
                elif kind == "record":
                    self.timings.setdefault(payload["run_id"], [0.0]).append(time.perf_counter())
                    worker.task = None
                    tally.add(payload)
                elif kind == "error":
                    worker.task = None
                    outcome.failure = outcome.failure or payload
                elif kind == "ready":
                    self.warm_seconds.append(payload)
        except (EOFError, OSError):
            return False
        return True

    def _bury(self, i: int, worker: _Worker, out_dir: str, tally: _Tally, outcome: _Outcome,
              queue: list[dict[str, Any]]) -> None:
        """A worker died with a run: record the run as failed (or hand it out again when the worker died
        before starting it), and put a fresh worker in its place when runs are left."""
        worker.process.join(timeout=5)
        task, worker.task = worker.task, None
        assert task is not None
        if worker.started:
            tally.add(record_lost_run(task, out_dir, death_reason(worker.process.exitcode), worker.process.pid))
        else:
            queue.append(task)
            outcome.idle_deaths += 1
        if queue and not self.stop.is_set():
            self._replace(i, worker, outcome)

    def _replace(self, i: int, dead: _Worker, outcome: _Outcome) -> _Worker:
        dead.process.join(timeout=5)
        if outcome.idle_deaths > 2 * self.size:
            raise NoisybenchError(f"worker processes keep dying before they run anything "
                                  f"({death_reason(dead.process.exitcode)}); run with --workers 1 to see why")
        with contextlib.suppress(OSError):
            dead.conn.close()
        self._workers[i] = self._new_worker()
        return self._workers[i]

    def _let_go(self, worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            worker.conn.send(None)

    def close(self, kill: bool = False) -> None:
        """Stop the workers: ask them to exit (``kill``: kill them; their runs resume from their checkpoints).

        Returns without waiting for workers still starting (they stop as soon as they are up)."""
        with self._lock:
            self._closing = True
            workers, self._workers, self._idle = [*self._workers, *self._idle], [], []
        self._stop_all(workers, kill)

    def _stop_all(self, workers: list[_Worker], kill: bool) -> None:
        for worker in workers:
            if kill:
                with contextlib.suppress(OSError, ValueError):
                    worker.process.kill()
            else:
                self._let_go(worker)
        for worker in workers:  # idle workers exit at once; one still warming up is not worth waiting for
            with contextlib.suppress(OSError, ValueError, AssertionError):
                worker.process.join(timeout=2 if kill else 0.5)
                if worker.process.exitcode is None:
                    worker.process.kill()
                    worker.process.join(timeout=2)
            with contextlib.suppress(OSError):
                worker.conn.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(kill=exc[0] is not None)


def death_reason(exitcode: int | None) -> str:
    """``worker died: signal 9 (SIGKILL; ...)`` or ``worker died: exit code 3``."""
    if exitcode is None or exitcode >= 0:
        return f"worker died: exit code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = "unknown signal"
    hint = {"SIGKILL": "; killed from outside, e.g. by the out-of-memory killer",
            "SIGSEGV": "; a crash in native code", "SIGBUS": "; a crash in native code"}.get(name, "")
    return f"worker died: signal {-exitcode} ({name}{hint})"


def warm_specs(runs: Sequence[RunConfig]) -> list[dict[str, Any]]:
    """One run config per distinct dataset (and data root) of ``runs``, at most :data:`WARM_DATASETS`."""
    seen: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for run in runs:
        key = (run.dataset.name, repr(sorted(run.dataset.params.items())), run.data_root)
        if key not in seen and len(seen) < WARM_DATASETS:
            seen[key] = run.to_dict()
    return list(seen.values())


def _worker_main(conn: Connection, driver: int, stop: Any, warm: list[dict[str, Any]]) -> None:
    """A worker: warm up, then run what the driver sends until it sends None (or goes away)."""
    _init_worker(driver, stop)
    start = time.perf_counter()
    warm_up(warm)
    conn.send(("ready", time.perf_counter() - start))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        config, out_dir, retry_failed = task
        conn.send(("started", config["run_id"]))
        try:
            reply: tuple[str, Any] = ("record", execute_run(config, out_dir, retry_failed))
        except Exception as exc:  # not a run's failure (those are records): the store or the suite itself
            reply = ("error", _portable(exc))
        conn.send(reply)


def warm_up(specs: list[dict[str, Any]]) -> None:
    """Pay in advance what a process's first run would: the environment record, each dataset's loading
    (cached for the runs: the same arrays they would load), torch's lazy imports behind its determinism
    switches, and the first fingerprint's look-ups of installed distributions. Never raises: a dataset
    that fails to load fails its runs, with their records."""
    from noisybench.data import load_dataset
    from noisybench.orchestration.fingerprint import fingerprint
    from noisybench.orchestration.runner import environment
    from noisybench.runtime import resolve_runtime

    with contextlib.suppress(Exception):
        environment()
    for config in specs:
        with contextlib.suppress(Exception):
            run = RunConfig.from_dict(config)
            load_dataset(run.dataset.name, run.data_root, **run.dataset.params)
            with resolve_runtime(run.train).applied():
                fingerprint(run)


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives the pipe, else an error carrying its traceback as text."""
    if isinstance(exc, NoisybenchError):
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:
            return NoisybenchError(str(exc))
    return RuntimeError(f"a worker failed outside any run:\n{traceback.format_exc()}")


def _init_worker(driver: int | None = None, stop: Any = None) -> None:
    """Workers ignore Ctrl-C (the driver decides), read the driver's stop flag and watch the driver;
    each run sets its own torch thread count (its recipe's ``threads``)."""
    ignore_sigint()  # the driver decides what a Ctrl-C means (noisybench.orchestration.interrupt)
    if stop is not None:
        use_flag(stop)
    if driver is not None:
        threading.Thread(target=_exit_with_driver, args=(driver,), name="driver-watch", daemon=True).start()


def _exit_with_driver(driver: int, interval: float = 1.0) -> None:
    """Workers outlive a SIGKILLed driver (they are children of the fork server): exit when the driver
    is gone. A run in flight is resumed from its checkpoint by the next ``run``."""
    while True:
        time.sleep(interval)
        try:
            os.kill(driver, 0)
        except ProcessLookupError:
            os._exit(3)
        except PermissionError:
            pass


def costliest_first(runs: list[RunConfig]) -> list[RunConfig]:
    """``runs`` ordered by their method's declared :attr:`~noisybench.method.Method.relative_cost`, costliest
    first (a stable sort: the plan's order otherwise), so that the pool's last runs are short ones."""
    from noisybench.registry import METHODS

    return sorted(runs, key=lambda run: -METHODS.get(run.method).relative_cost)


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
