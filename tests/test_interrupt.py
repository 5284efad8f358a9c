"""Ctrl-C of ``noisybench run`` (noisybench.orchestration.interrupt):
exit 130 within seconds, no orphans, exact resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from noisybench.orchestration.interrupt import GridInterrupted, stop_on_sigint, stop_requested
from noisybench.store.results import load_results

GRID = """
name = "ctrlc"
[grid]
datasets = ["blobs"]
methods = ["sleepy-ce", "sleepy-elr"]
noise = ["sym:0.2"]
seeds = [1, 2, 3, 4, 5, 6]
[train]
epochs = 6
[datasets.blobs]
n_samples = 300
dim = 6
"""


def _cli(args: list[str], sleep: float = 0.0, grace: float = 5.0) -> subprocess.Popen:
    """``noisybench ARGS`` in a new session whose ``sleepy-*`` methods (tests/plugins) sleep ``sleep`` s per epoch."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "NOISYBENCH_STOP_GRACE": str(grace),
           "NOISYBENCH_PLUGINS": str(Path(__file__).resolve().parent / "plugins"), "SLEEPY_SECONDS": str(sleep)}
    return subprocess.Popen([sys.executable, "-m", "noisybench.cli", *args], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _group_members(pgid: int) -> list[str]:
    """Processes still alive (not zombies) in process group ``pgid``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(stat.parent.name)
    return alive


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _in_flight(out: Path) -> list[Path]:
    """Runs that have finished an epoch but are at least three epochs from their end (so they cannot finish
    before a Ctrl-C sent now reaches them)."""
    found = []
    for folder in (out / "runs").glob("*"):
        try:
            epochs = len(json.loads((folder / "history.json").read_text()))
        except (OSError, ValueError):
            continue
        if 1 <= epochs <= 3 and not (folder / "result.json").exists():
            found.append(folder)
    return found


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The results of the grid run straight through, once for every case."""
    folder = tmp_path_factory.mktemp("reference")
    (folder / "g.toml").write_text(GRID)
    ref = _cli(["run", str(folder / "g.toml"), "--out", str(folder / "out"), "--workers", "2"])
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err.decode()[-2000:]
    return load_results(folder / "out")


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "whole_group"), [(2, True), (2, False), (1, True)],
                         ids=["pool-ctrl-c", "pool-sigint-driver", "in-process-ctrl-c"])
def test_ctrl_c_exits_130_quickly_and_a_rerun_matches_an_uninterrupted_run(
    tmp_path: Path, workers: int, whole_group: bool, uninterrupted: pd.DataFrame
) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    # 12 runs x 6 epochs x 0.5 s: far more than 10 s of epochs are left when the Ctrl-C comes
    proc = _cli(["run", str(grid), "--out", str(out), "--workers", str(workers)], sleep=0.5)
    try:
        started = _wait_for(lambda: len(list(out.rglob("result.json"))) >= 1 and _in_flight(out), 240)
        assert started, "no run in flight to interrupt"
        sent = time.time()
        if whole_group:  # a Ctrl-C in a terminal reaches every process of the foreground group
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        _, err_bytes = proc.communicate(timeout=10)
        took = time.time() - sent
        err = err_bytes.decode()
        assert proc.returncode == 130 and took < 10, err[-2000:]
        assert "interrupted (will resume)" in err and "Traceback" not in err, err[-2000:]
        assert _wait_for(lambda: not _group_members(proc.pid), 3), f"orphans: {_group_members(proc.pid)}"
    finally:  # never leave a driver or its workers behind, even when an assertion failed
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p.parent.name: p.read_bytes() for p in out.rglob("result.json")}
    assert 1 <= len(finished) < 12
    rerun = _cli(["run", str(grid), "--out", str(out), "--workers", "2"])
    _, rerun_err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, rerun_err.decode()[-2000:]
    for run_id, data in finished.items():
        assert (out / "runs" / run_id / "result.json").read_bytes() == data
    records = [json.loads(p.read_text()) for p in out.rglob("result.json")]
    resumed = sum(r["resumed_from_epoch"] > 0 for r in records)
    assert len(records) == 12 and resumed >= 1, (resumed, err[-2000:])  # the run in flight resumed mid-run
    a, b = load_results(out), uninterrupted
    assert list(a["run_id"]) == list(b["run_id"])
    for column in ["val_selected", "last", "mean_last_k", "best_on_test"]:
        assert a[column].tolist() == b[column].tolist()


@pytest.mark.slow
def test_runs_that_do_not_reach_an_epoch_end_within_the_grace_are_killed(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    proc = _cli(["run", str(grid), "--out", str(out), "--workers", "2"], sleep=60, grace=2)  # epochs > grace
    try:
        assert _wait_for(lambda: len(list(out.rglob("config.json"))) >= 2, 120), "runs did not start"
        sent = time.time()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 130 and time.time() - sent < 10, err.decode()[-2000:]
        assert "2 interrupted (will resume)" in err.decode() and "Traceback" not in err.decode()
        assert _wait_for(lambda: not _group_members(proc.pid), 3), f"orphans: {_group_members(proc.pid)}"
        assert not list(out.rglob("result.json"))  # killed runs leave no record: a rerun redoes them
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_first_sigint_requests_a_stop_and_the_second_interrupts() -> None:
    with stop_on_sigint(grace=60):
        assert not stop_requested()
        os.kill(os.getpid(), signal.SIGINT)
        assert _wait_for(stop_requested, 2)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)
    assert not stop_requested()  # cleared for the next grid in this process


def test_grace_period_interrupts_the_main_thread() -> None:
    with stop_on_sigint(grace=0.2), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)


def test_interruption_message_counts_runs() -> None:
    assert str(GridInterrupted(3, 2, 7)).startswith("3 finished, 2 interrupted (will resume), 7 not started")
