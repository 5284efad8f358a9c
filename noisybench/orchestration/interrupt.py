"""Stopping a grid on Ctrl-C: the first one stops cleanly, a second one at once.

The driver of a local grid installs :func:`stop_on_sigint`. The first SIGINT sets the stop flag
and prints one line: no further run is handed out, and every run in flight stops at the end of
its current epoch, right after that epoch's checkpoint is written (:func:`stop_requested`, read
by :mod:`noisybench.orchestration.runner`), so a rerun resumes it exactly. A second SIGINT, or ``grace``
seconds without the runs reaching an epoch end, raises :class:`KeyboardInterrupt` in the
driver, which then kills its workers: their runs resume from the previous epoch's checkpoint.
Pool workers ignore SIGINT (a Ctrl-C in a terminal reaches the whole process group) and read
the driver's flag through a shared event (:func:`use_flag`).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from noisybench.envvars import get

_flag: Any = threading.Event()


def stop_requested() -> bool:
    """Whether this grid was asked to stop (runs end at their next epoch boundary)."""
    return bool(_flag.is_set())


def use_flag(flag: Any) -> None:
    """Read the stop request from ``flag`` (a ``multiprocessing`` event shared with the driver)."""
    global _flag
    _flag = flag


def flag() -> Any:
    """The event that :func:`stop_requested` reads."""
    return _flag


class RunInterrupted(Exception):
    """A run stopped at an epoch end because the grid was asked to stop; its checkpoint is kept."""


class GridInterrupted(Exception):
    """The grid stopped on Ctrl-C; the message counts what finished and what will resume."""

    def __init__(self, finished: int, interrupted: int, not_started: int) -> None:
        self.finished, self.interrupted, self.not_started = finished, interrupted, not_started
        super().__init__(f"{finished} finished, {interrupted} interrupted (will resume), {not_started} not started; "
                         "rerun the same command to continue")


@contextlib.contextmanager
def stop_on_sigint(event: Any = None, grace: float | None = None) -> Iterator[None]:
    """While active (main thread only), the first SIGINT sets ``event``, the second interrupts.

    ``event`` defaults to this process's own flag (runs trained in-process read it); it is clear
    on entry and on exit. ``grace`` seconds after the first SIGINT the main thread is interrupted
    as if by the second.
    """
    event = _flag if event is None else event
    if grace is None:  # seconds to wait for runs in flight to reach an epoch end (validated: finite, >= 0)
        grace = float(get("NOISYBENCH_STOP_GRACE"))
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    event.clear()
    state = {"count": 0, "active": True}
    main = threading.main_thread().ident or 0
    timer: list[threading.Timer] = []

    def escalate() -> None:
        if state["active"]:  # a real signal, so that a sleeping or waiting main thread wakes up
            signal.pthread_kill(main, signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        state["count"] += 1
        if state["count"] > 1:
            raise KeyboardInterrupt
        event.set()
        print(f"noisybench: stopping: no new runs; runs in flight stop at their next epoch end "
              f"(at most {grace:g} s); Ctrl-C again to stop at once", file=sys.stderr, flush=True)
        timer.append(threading.Timer(grace, escalate))
        timer[0].daemon = True
        timer[0].start()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        state["active"] = False
        for t in timer:
            t.cancel()
        signal.signal(signal.SIGINT, previous)
        event.clear()


def ignore_sigint() -> None:
    """In a pool worker: leave SIGINT to the driver, which stops the worker's runs through the flag."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
