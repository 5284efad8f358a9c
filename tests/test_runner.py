"""execute_run under concurrency: claims, two drivers at once, SIGKILL of the driver
(noisybench.orchestration.runner)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from noisybench.orchestration.runner import execute_run, pending_runs
from noisybench.store import ResultStore
from noisybench.store.claims import CLAIMS, process_start
from noisybench.store.results import load_results
from tests.test_executors import tiny_runs

SLEEPY_FOLDER = str(Path(__file__).resolve().parent / "plugins")

GRID = """
name = "conc"
[grid]
datasets = ["blobs"]
methods = ["sleepy-ce"]
noise = ["sym:0.2"]
seeds = [1, 2, 3, 4, 5, 6]
[train]
epochs = 4
[datasets.blobs]
n_samples = 300
dim = 6
"""


def _cli(args: list[str], sleep: float = 0.0, checkpoint_every_epoch: bool = False) -> subprocess.Popen:
    """``noisybench ARGS`` in a new process whose ``sleepy-*`` methods (tests/plugins) sleep ``sleep`` s per epoch."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NOISYBENCH_PLUGINS": SLEEPY_FOLDER, "SLEEPY_SECONDS": str(sleep)}
    if checkpoint_every_epoch:
        env["NOISYBENCH_CHECKPOINT_SECONDS"] = "0"
    env.pop("OMP_NUM_THREADS", None)  # thread counts come from each run's recipe, not the environment
    return subprocess.Popen([sys.executable, "-m", "noisybench.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _in_flight_with_checkpoint(out: Path) -> set[str]:
    """The unfinished runs that have saved a checkpoint (the grid runs with one checkpoint per epoch)."""
    return {p.parent.name for p in out.rglob("checkpoint.pt") if not (p.parent / "result.json").exists()}


def _acquisitions(out: Path) -> list[str]:
    log = out / CLAIMS / "log"
    return [line.split()[2] for line in log.read_text().splitlines()] if log.exists() else []


def test_run_claimed_by_a_live_process_is_not_touched(tmp_path: Path) -> None:
    run = tiny_runs(seeds=(1,))[0]
    parent = os.getppid()
    (tmp_path / CLAIMS).mkdir()
    (tmp_path / CLAIMS / f"{run.run_id}.0").write_text(json.dumps(
        {"host": socket.gethostname(), "pid": parent, "start": process_start(parent), "job": None}))
    record = execute_run(run, tmp_path)
    assert record["status"] == "running" and f"pid {parent}" in record["reason"]
    assert not (tmp_path / "runs" / run.run_id).exists()  # nothing written, nothing trained


def test_claim_lost_mid_run_stops_without_writing_a_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from noisybench.trainer import Trainer

    real_epoch = Trainer._run_epoch
    monkeypatch.setattr(Trainer, "_run_epoch", lambda *a: (real_epoch(*a), time.sleep(0.3))[0])  # slow epochs
    run = tiny_runs(seeds=(1,), epochs=5)[0]
    history = tmp_path / "runs" / run.run_id / "history.json"

    def usurp() -> None:  # another host takes the run over after the first epoch
        while not history.exists():
            time.sleep(0.02)
        (tmp_path / CLAIMS / f"{run.run_id}.1").write_text(json.dumps({"host": "elsewhere", "pid": 1}))

    thread = threading.Thread(target=usurp)
    thread.start()
    record = execute_run(run, tmp_path)
    thread.join()
    assert record["status"] == "running" and "claim lost to elsewhere" in record["reason"]
    assert not (tmp_path / "runs" / run.run_id / "result.json").exists()
    assert (tmp_path / CLAIMS / f"{run.run_id}.1").exists()  # the new owner's claim is left alone


def test_pending_runs_skips_finished_and_retries_failed(tmp_path: Path) -> None:
    runs = tiny_runs(seeds=(1, 2, 3))
    execute_run(runs[0], tmp_path)
    store = ResultStore(tmp_path)
    store.write_result({"run_id": runs[1].run_id, "config": runs[1].to_dict(), "status": "failed", "reason": "x"})
    assert pending_runs(runs, store) == [runs[2]]
    assert pending_runs(runs, store, retry_failed=True) == runs[1:]


@pytest.mark.slow
def test_two_drivers_at_once_train_each_run_once(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    drivers = [_cli(["run", str(grid), "--out", str(out), "--workers", "1"], sleep=0.1) for _ in range(2)]
    outputs = [d.communicate(timeout=300) for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], [e.decode()[-2000:] for _, e in outputs]
    acquired = _acquisitions(out)
    assert sorted(acquired) == sorted(set(acquired)) and len(acquired) == 6  # each run trained exactly once
    frame = load_results(out)
    assert len(frame) == 6 and set(frame["status"]) == {"done"}
    trainers = {line.split()[5] for line in (out / CLAIMS / "log").read_text().splitlines()}
    assert trainers == {str(d.pid) for d in drivers}  # both drivers really worked at the same time


def _holders_alive(out: Path) -> list[int]:
    pids = [json.loads(p.read_text() or "{}").get("pid") for p in (out / CLAIMS).glob("*.[0-9]*")]
    alive = []
    for pid in filter(None, pids):
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_of_driver_loses_nothing_and_rerun_does_only_the_rest(tmp_path: Path, workers: int) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    # 1 s epochs: a pool worker notices the driver's death within about a second, before its run can finish
    proc = _cli(["run", str(grid), "--out", str(out), "--workers", str(workers)], sleep=1.0,
                checkpoint_every_epoch=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.rglob("result.json"))) < 2:
        time.sleep(0.05)
    while time.time() < deadline and not _in_flight_with_checkpoint(out):  # a later run has saved a checkpoint
        time.sleep(0.05)
    in_flight = _in_flight_with_checkpoint(out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    while time.time() < deadline and _holders_alive(out):  # pool workers notice and exit within ~1 s
        time.sleep(0.1)
    assert not _holders_alive(out), "pool workers outlived the killed driver"
    finished = {p.parent.name: p.read_bytes() for p in out.rglob("result.json")}
    assert 2 <= len(finished) < 6
    before = len(_acquisitions(out))
    rerun = _cli(["run", str(grid), "--out", str(out), "--workers", "1"])
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()[-2000:]
    redone = _acquisitions(out)[before:]
    assert sorted(redone) == sorted(set(redone)) and not set(redone) & set(finished)  # only the missing ones
    assert len(redone) == 6 - len(finished)
    for run_id, data in finished.items():  # finished results untouched
        assert (out / "runs" / run_id / "result.json").read_bytes() == data
    resumed = [json.loads((out / "runs" / r / "result.json").read_text())["resumed_from_epoch"]
               for r in redone if r in in_flight]
    assert resumed and min(resumed) > 0  # the runs in flight resumed from their checkpoints
    reference = tmp_path / "ref"
    ref = _cli(["run", str(grid), "--out", str(reference), "--workers", "1"])
    ref.communicate(timeout=300)
    a, b = load_results(out), load_results(reference)
    for column in ["val_selected", "last", "mean_last_k"]:
        assert a[column].tolist() == b[column].tolist()
    assert _histories(out) == _histories(reference)  # the resumed run's epochs too, bit for bit


def _histories(out: Path) -> dict[str, list[dict]]:
    volatile = {"epoch_time", "peak_mem_mb"}
    return {r: [{k: v for k, v in row.items() if k not in volatile} for row in ResultStore(out).history(r)]
            for r in ResultStore(out).run_ids()}


def test_one_config_gives_identical_numbers_with_one_or_two_workers(tmp_path: Path) -> None:
    """The run id pins the thread count (``[train] threads``), so the worker count cannot move a number."""
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.replace("seeds = [1, 2, 3, 4, 5, 6]", "seeds = [1, 2]"))
    for workers in (1, 2):
        proc = _cli(["run", str(grid), "--out", str(tmp_path / f"w{workers}"), "--workers", str(workers)])
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    one, two = load_results(tmp_path / "w1"), load_results(tmp_path / "w2")
    assert one["run_id"].tolist() == two["run_id"].tolist()
    assert one["val_selected"].tolist() == two["val_selected"].tolist() and one["last"].tolist() == two["last"].tolist()
    assert _histories(tmp_path / "w1") == _histories(tmp_path / "w2")
    runtime = [json.loads(p.read_text()).get("runtime") for p in (tmp_path / "w2").rglob("result.json")]
    assert all((r["device"], r["threads"], r["precision"]) == ("cpu", 1, "fp32") for r in runtime)


def test_runs_checkpoint_by_the_clock_and_still_store_their_whole_history(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from noisybench.io import atomic_torch_save

    saved: list[str] = []
    monkeypatch.setenv("NOISYBENCH_CHECKPOINT_SECONDS", "3600")
    monkeypatch.setattr("noisybench.store.checkpoint.atomic_torch_save",
                        lambda obj, path: saved.append(str(path)) or atomic_torch_save(obj, path))
    run = tiny_runs(seeds=(1,), epochs=4)[0]
    record = execute_run(run, tmp_path)
    assert record["status"] == "done" and saved == []  # seconds-long run: no checkpoint written
    assert [h["epoch"] for h in ResultStore(tmp_path).history(run.run_id)] == [0, 1, 2, 3]


@pytest.mark.parametrize("value", ["soon", "1s"])
def test_a_bad_checkpoint_interval_is_refused_with_the_fix(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from noisybench.errors import ConfigError
    from noisybench.orchestration.runner import checkpoint_seconds

    monkeypatch.setenv("NOISYBENCH_CHECKPOINT_SECONDS", value)
    with pytest.raises(ConfigError, match=r"NOISYBENCH_CHECKPOINT_SECONDS.*set it to e\.g\. 5"):
        checkpoint_seconds()


def test_a_stop_checkpoints_at_once_between_clock_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With checkpoints due only every hour, a Ctrl-C still saves the epoch it stops at; the rerun resumes there
    and ends with the metrics of an uninterrupted run."""
    import threading

    from noisybench.orchestration import interrupt
    from noisybench.trainer import Trainer

    monkeypatch.setenv("NOISYBENCH_CHECKPOINT_SECONDS", "3600")
    run = tiny_runs(seeds=(1,), epochs=4)[0]
    reference = execute_run(run, tmp_path / "reference")
    stop = threading.Event()
    monkeypatch.setattr(interrupt, "_flag", stop)
    real_epoch = Trainer._run_epoch

    def epoch_then_stop(self, ctx, method, epoch):  # Ctrl-C arrives during the second epoch
        row = real_epoch(self, ctx, method, epoch)
        if epoch == 1:
            stop.set()
        return row

    monkeypatch.setattr(Trainer, "_run_epoch", epoch_then_stop)
    first = execute_run(run, tmp_path / "out")
    assert first["status"] == "interrupted"
    assert len(ResultStore(tmp_path / "out").history(run.run_id)) == 2  # saved with its checkpoint at epoch 1
    stop.clear()
    resumed = execute_run(run, tmp_path / "out")
    assert resumed["status"] == "done" and resumed["resumed_from_epoch"] == 2
    volatile = {"train_time"}
    assert {k: v for k, v in resumed["metrics"].items() if k not in volatile} == \
        {k: v for k, v in reference["metrics"].items() if k not in volatile}


@pytest.mark.parametrize("damage", ["shapes", "no-nets", "list", "nets-missing-one"])
def test_a_checkpoint_that_loads_but_does_not_fit_is_discarded_and_the_run_starts_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    """A checkpoint that torch loads but the run cannot apply: warned about, removed, the run trains from
    scratch to the numbers of an uninterrupted run, and records that it resumed from nothing."""
    import torch

    from noisybench.io import atomic_torch_save, torch_load_weights
    from noisybench.trainer import Trainer

    run = tiny_runs(seeds=(1,), epochs=4)[0]
    reference = execute_run(run, tmp_path / "reference")
    real_epoch = Trainer._run_epoch

    def crash_in_epoch_2(self, ctx, method, epoch):
        if epoch == 2:
            raise RuntimeError("power cut")
        return real_epoch(self, ctx, method, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_run_epoch", crash_in_epoch_2)
        assert execute_run(run, tmp_path / "out")["status"] == "failed"
    store = ResultStore(tmp_path / "out")
    folder = store.run_dir(run.run_id)
    (folder / "result.json").unlink()  # as if the process had died in epoch 2: checkpoint and history of 2 epochs
    state = torch_load_weights(folder / "checkpoint.pt")
    assert len(state["history"]) == 2 and len(store.history(run.run_id)) == 2
    if damage == "shapes":
        name = next(iter(state["nets"][0]))
        state["nets"][0][name] = torch.zeros(3, 3)
    elif damage == "no-nets":
        del state["nets"]
    elif damage == "nets-missing-one":
        state["nets"] = []
    else:
        state = [1, 2]
    atomic_torch_save(state, folder / "checkpoint.pt")
    with pytest.warns(UserWarning, match="checkpoint"):
        record = execute_run(run, tmp_path / "out")
    assert record["status"] == "done", record.get("reason")
    assert record["resumed_from_epoch"] == 0  # what was restored, not what the history file held
    assert not (folder / "checkpoint.pt").exists()
    volatile = {"train_time"}
    assert {k: v for k, v in record["metrics"].items() if k not in volatile} == \
        {k: v for k, v in reference["metrics"].items() if k not in volatile}


def test_resumed_from_epoch_counts_the_epochs_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from noisybench.trainer import Trainer

    run = tiny_runs(seeds=(1,), epochs=4)[0]
    real_epoch = Trainer._run_epoch

    def crash_in_epoch_3(self, ctx, method, epoch):
        if epoch == 3:
            raise RuntimeError("power cut")
        return real_epoch(self, ctx, method, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_run_epoch", crash_in_epoch_3)
        execute_run(run, tmp_path)
    (ResultStore(tmp_path).run_dir(run.run_id) / "result.json").unlink()
    assert execute_run(run, tmp_path)["resumed_from_epoch"] == 3
