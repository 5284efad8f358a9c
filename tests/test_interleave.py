"""``benchmarks/interleave.py``: runs take turns epoch by epoch, each timed only while it holds its turn, and
interleaving changes no number."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import pytest

from noisybench.config import load_grid
from noisybench.plan import expand_grid
from noisybench.trainer import Trainer
from tests.conftest import TINY_GRID

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "interleave.py"


@pytest.fixture(scope="module")
def interleave():
    spec = importlib.util.spec_from_file_location("interleave", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_turns_rotate_and_a_participant_that_leaves_drops_out(interleave) -> None:
    turnstile, log = interleave.Turnstile(3), []
    turns = {0: 3, 1: 1, 2: 2}  # participant 1 leaves after its first turn

    def work(k: int) -> None:
        turnstile.wait(k)
        for i in range(turns[k]):
            log.append(k)
            if i + 1 < turns[k]:
                turnstile.next(k)
        turnstile.done(k, leave=True)

    threads = [threading.Thread(target=work, args=(k,)) for k in (2, 1, 0)]  # start order does not matter
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert log == [0, 1, 2, 0, 2, 0]


def test_a_participant_is_timed_only_while_it_holds_its_turn(interleave) -> None:
    turnstile = interleave.Turnstile(2)
    hold = {0: 0.0, 1: 0.2}

    def work(k: int) -> None:
        turnstile.wait(k)
        for i in range(2):
            time.sleep(hold[k])
            if i == 0:
                turnstile.next(k)
        turnstile.done(k, leave=True)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert turnstile.seconds[0] < 0.1  # it waited 0.2 s for participant 1's turn, untimed
    assert turnstile.seconds[1] >= 0.4


def test_interleaved_runs_train_exactly_as_alone_and_are_timed(interleave, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "g.toml"
    path.write_text(TINY_GRID)
    runs = expand_grid(load_grid(path))[:3]
    alone = [Trainer(run).run()["history"] for run in runs]
    together: dict[int, list] = {}
    original = Trainer.run

    def recording_run(self):
        out = original(self)
        together[runs.index(self.config)] = out["history"]
        return out

    monkeypatch.setattr(Trainer, "run", recording_run)
    seconds = interleave.interleaved_run_seconds(runs)
    assert all(s > 0 for s in seconds) and len(seconds) == 3
    for k, history in enumerate(alone):
        assert untimed(together[k]) == untimed(history)


def untimed(history: list[dict]) -> list[dict]:
    """A history without its wall-clock time and the process's peak memory."""
    return [{key: value for key, value in row.items() if key not in ("epoch_time", "peak_mem_mb")} for row in history]


def test_a_failing_run_is_raised_after_the_others_end(interleave, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "g.toml"
    path.write_text(TINY_GRID)
    good, bad = expand_grid(load_grid(path))[:2]
    original = Trainer.run

    def failing_run(self):
        if self.config is bad:
            raise RuntimeError("boom")
        return original(self)

    monkeypatch.setattr(Trainer, "run", failing_run)
    with pytest.raises(RuntimeError, match="boom"):
        interleave.interleaved_run_seconds([bad, good])
