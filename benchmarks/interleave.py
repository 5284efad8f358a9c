"""Whole runs timed side by side at epoch granularity, so that the host's slow phases hit every run alike.

On a shared virtual machine the host sets the speed in phases of ten seconds and more (the same CE run took
7.2-11.2 s within 20 minutes on an idle VM). Interleaving whole runs cannot cancel phases that long; interleaving
epochs can: every run trains in its own thread, and a :class:`Turnstile` lets one thread compute at a time, in a
fixed rotation, handing the turn on after each epoch (the trainer's ``on_epoch`` hook). A run's time is the sum of
its turns: its setup (data, networks), every epoch with its evaluation, and its end; never the time it waited.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from noisybench.config import RunConfig
from noisybench.trainer import Trainer


class Turnstile:
    """One participant at a time, in a fixed rotation; each participant's seconds while holding its turn.

    Parameters
    ----------
    count
        Participants, numbered 0..count-1; participant 0 has the first turn.
    """

    def __init__(self, count: int) -> None:
        self._cond = threading.Condition()
        self._order = list(range(count))
        self._at = 0
        self._since = 0.0
        self.seconds = [0.0] * count

    def wait(self, k: int) -> None:
        """Block until it is participant ``k``'s turn, then start its clock."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._order) and self._order[self._at] == k)
            self._since = time.perf_counter()

    def done(self, k: int, leave: bool = False) -> None:
        """Stop ``k``'s clock and hand the turn to the next participant (``leave``: ``k`` drops out)."""
        with self._cond:
            self.seconds[k] += time.perf_counter() - self._since
            i = self._order.index(k)
            if leave:
                self._order.pop(i)
                self._at = i % len(self._order) if self._order else 0
            else:
                self._at = (i + 1) % len(self._order)
            self._cond.notify_all()

    def next(self, k: int) -> None:
        """End ``k``'s turn and wait for its next one."""
        self.done(k)
        self.wait(k)


def interleaved_run_seconds(runs: Sequence[RunConfig]) -> list[float]:
    """Seconds of each of ``runs`` trained from scratch, the runs taking turns epoch by epoch in the given order.

    Raises the first run's error, if any run fails (after every run has ended).
    """
    turnstile = Turnstile(len(runs))
    errors: list[BaseException] = []

    def train(k: int) -> None:
        turnstile.wait(k)
        try:
            Trainer(runs[k], on_epoch=lambda _history: turnstile.next(k)).run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
        finally:
            turnstile.done(k, leave=True)

    threads = [threading.Thread(target=train, args=(k,), daemon=True) for k in range(len(runs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return turnstile.seconds
