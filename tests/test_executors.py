"""Executors without a cluster: option parsing, the sbatch path against a fake sbatch, debug,
array tasks, and recording of jobs that end without results (noisybench.orchestration.executors)."""

from __future__ import annotations

import json
import os
import pdb
from pathlib import Path
from typing import Any

import pytest
import submitit

from noisybench.config import parse_grid
from noisybench.errors import ConfigError
from noisybench.orchestration.executors import ExecRequest, execute_plan
from noisybench.orchestration.executors.slurm import (
    RunBatch,
    SlurmOptions,
    Submission,
    group_runs,
    parse_sbatch_flags,
    parse_time_limit,
    wait,
)
from noisybench.orchestration.runner import execute_run
from noisybench.plan import expand_grid
from noisybench.store import ResultStore
from noisybench.store.status import store_status


def tiny_runs(seeds: tuple[int, ...] = (1, 2, 3), epochs: int = 2, datasets: tuple[str, ...] = ("blobs",)) -> list:
    grid = parse_grid({
        "name": "t",
        "grid": {"datasets": list(datasets), "methods": ["ce"], "noise": ["sym:0.2"], "seeds": list(seeds)},
        "train": {"epochs": epochs}, "datasets": {"blobs": {"n_samples": 300, "dim": 6}} if "blobs" in datasets else {},
    })
    return expand_grid(grid)


@pytest.mark.parametrize(("value", "minutes"), [  # sbatch's reading (man sbatch); tests/slurm checks the cluster's
    (90, 90), ("90", 90), ("30:00", 30), ("1:30", 2), ("5:00", 5), ("1:30:00", 90), ("0:00:30", 1),
    ("2-12", 3600), ("2-00:00:00", 2880), ("1-1:00", 1500), ("UNLIMITED", None), ("infinite", None), ("0", None),
])
def test_time_limit_formats(value: Any, minutes: int | None) -> None:
    assert parse_time_limit(value) == minutes


def test_bad_time_limit_names_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"time '1h'.*e\.g\. 120, 2:00:00 or 1-00:00:00"):
        parse_time_limit("1h")


def test_options_from_grid_then_cli() -> None:
    table = {"partition": "gpu", "time": "2:00:00", "cpus": 4, "sbatch": {"constraint": "volta"}}
    options = SlurmOptions.from_sources(table, {"cpus": 2, "qos": None, "account": "lab"})
    assert (options.partition, options.time, options.cpus, options.account) == ("gpu", 120, 2, "lab")
    assert options.qos is None and options.sbatch == {"constraint": "volta"}
    with pytest.raises(ConfigError, match=r"unknown key 'partion'.*Did you mean 'partition'"):
        SlurmOptions.from_sources({"partion": "gpu"}, {})
    with pytest.raises(ConfigError, match="cpus must be >= 1"):
        SlurmOptions.from_sources({"cpus": 0}, {})
    assert parse_sbatch_flags(["constraint=volta", "--exclusive", "mail-type=END"]) == {
        "constraint": "volta", "exclusive": True, "mail_type": "END"}


def test_group_runs_packs_by_dataset() -> None:
    runs = tiny_runs(seeds=tuple(range(1, 6)), datasets=("blobs", "digits"))
    groups = group_runs(runs, 0, parallelism=1)  # 10 runs, 4 x 1 tasks wanted -> 3 per task
    assert [len(g) for g in groups] == [3, 3, 3, 1]
    assert sorted(r.run_id for g in groups for r in g) == sorted(r.run_id for r in runs)
    assert {r.dataset.name for r in groups[0]} == {"blobs"}
    assert [len(g) for g in group_runs(runs, 4, parallelism=64)] == [4, 4, 2]


@pytest.fixture
def fake_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``sbatch`` (and ``srun``) on PATH: keeps a copy of each script and answers job id 4242."""
    bin_dir, captured = tmp_path / "bin", tmp_path / "captured"
    bin_dir.mkdir()
    captured.mkdir()
    script = bin_dir / "sbatch"
    script.write_text(f"#!/bin/sh\ncp \"$1\" {captured}/script.sh\necho 'Submitted batch job 4242'\n")
    script.chmod(0o755)
    srun = bin_dir / "srun"  # submitit only checks that srun exists; the job never runs here
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return captured


def test_slurm_submission_builds_one_array_with_the_requested_resources(tmp_path: Path, fake_sbatch: Path) -> None:
    runs = tiny_runs(seeds=(1, 2, 3, 4, 5))
    options = SlurmOptions.from_sources(
        {"partition": "gpu", "account": "lab", "qos": "high", "time": "1:30:00", "sbatch": {"constraint": "volta"},
         "setup": ["module load cuda"]},
        {"cpus": 2, "gpus": 1, "mem_gb": 8, "array_parallelism": 2, "runs_per_task": 2})
    request = ExecRequest("slurm", runs, tmp_path / "out", "t", options, detach=True, log=lambda _: None)
    assert execute_plan(request) is None
    script = (fake_sbatch / "script.sh").read_text()
    for flag in ["--array=0-2%2", "--partition=gpu", "--account=lab", "--qos=high", "--time=90",
                 "--cpus-per-task=2", "--gpus-per-node=1", "--mem=8GB", "--constraint=volta", "--job-name=nb-t"]:
        assert f"#SBATCH {flag}\n" in script, flag
    assert "module load cuda" in script and "submitit.core._submit" in script
    record = json.loads((tmp_path / "out" / "jobs" / "4242.json").read_text())
    assert list(record["tasks"]) == ["4242_0", "4242_1", "4242_2"]
    assert sorted(i for ids in record["tasks"].values() for i in ids) == sorted(r.run_id for r in runs)
    assert [len(ids) for ids in record["tasks"].values()] == [2, 2, 1]


def test_run_batch_pins_threads_and_skips_finished(tmp_path: Path) -> None:
    import torch

    runs = tiny_runs(seeds=(1, 2))
    first = execute_run(runs[0], tmp_path)
    torch.set_num_threads(2)
    try:
        records = RunBatch([r.to_dict() for r in runs], str(tmp_path), threads=1)()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)
    assert [r["status"] for r in records] == ["done", "done"]
    assert records[0]["finished_at"] == first["finished_at"]  # returned as stored, not retrained
    assert all("traceback" not in r for r in records)


def test_debug_executor_runs_in_process_and_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdb, "post_mortem", lambda *a, **k: None)
    runs = tiny_runs(seeds=(1,))
    records = execute_plan(ExecRequest("debug", runs, tmp_path / "ok", "t", log=lambda _: None))
    assert [r["status"] for r in records] == ["done"]
    assert records[0]["pid"] == os.getpid()

    def boom(self: Any) -> None:
        raise ValueError("broken method")

    monkeypatch.setattr("noisybench.trainer.Trainer.run", boom)
    with pytest.raises(ValueError, match="broken method"):  # the original error, for pdb
        execute_plan(ExecRequest("debug", tiny_runs(seeds=(9,)), tmp_path / "bad", "t", log=lambda _: None))


def test_unknown_executor_suggests() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'slurm'"):
        execute_plan(ExecRequest("slurn", [], "x", "t"))


class _CancelledJob:
    """Quacks like a submitit SlurmJob that sacct reports as cancelled."""

    job_id = "55_0"

    class watcher:  # noqa: N801
        @staticmethod
        def update() -> None:
            return None

        @staticmethod
        def get_state(job_id: str, mode: str = "standard") -> str:
            return "CANCELLED by 0"

    def done(self) -> bool:
        return True

    def result(self) -> list:
        raise submitit.core.utils.UncompletedJobError("Job 55_0 (task: 0) with path ... has not produced any output")


def test_job_ending_without_results_is_recorded_with_its_state(tmp_path: Path) -> None:
    runs = tiny_runs(seeds=(1, 2))
    execute_run(runs[0], tmp_path)  # finished before the cancel: must stay done
    records = wait(Submission([_CancelledJob()], [runs]), tmp_path, poll=0.01)
    assert [r["status"] for r in records] == ["done", "failed"]
    stored = ResultStore(tmp_path).result(runs[1].run_id)
    assert stored["reason"].startswith("cancelled: Slurm job 55_0 CANCELLED by 0")
    assert stored["slurm_state"] == "CANCELLED by 0"
    status = store_status(tmp_path)
    assert status.states["failed"] == [runs[1].run_id] and status.states["done"] == [runs[0].run_id]


def test_cli_refuses_a_bad_slurm_table_even_for_local_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from noisybench.cli import main

    grid = tmp_path / "g.toml"
    grid.write_text('name = "g"\n[grid]\ndatasets = ["blobs"]\nmethods = ["ce"]\nnoise = ["sym:0.2"]\nseeds = [1]\n'
                    '[slurm]\npartiton = "gpu"\n')
    assert main(["run", str(grid), "--out", str(tmp_path / "out")]) == 2
    assert "unknown key 'partiton'" in capsys.readouterr().err
    grid.write_text(grid.read_text().replace("partiton", "partition"))
    assert main(["run", str(grid), "--out", str(tmp_path / "out"), "--executor", "slurm", "--time", "1h"]) == 2
    assert "time '1h' is not an sbatch time limit" in capsys.readouterr().err


def test_local_pool_starts_the_costliest_runs_first() -> None:
    from noisybench.orchestration.executors.local import costliest_first
    from noisybench.registry import METHODS

    grid = parse_grid({"name": "order", "grid": {"datasets": ["blobs"], "methods": ["ce", "dividemix", "gce"],
                                                 "noise": ["sym:0.2"], "seeds": [1, 2]}}, "order.toml")
    runs = expand_grid(grid)
    ordered = costliest_first(runs)
    assert METHODS.get("dividemix").relative_cost > METHODS.get("ce").relative_cost
    assert [r.method for r in ordered[:2]] == ["dividemix", "dividemix"]
    assert [r.run_id for r in ordered[2:]] == [r.run_id for r in runs if r.method != "dividemix"]  # plan order kept


KILLER = '''
import os
import signal
import time

import torch.nn.functional as F
from noisybench.method import Method


class Killer(Method):
    """Cross-entropy, except that the first run to reach its second epoch kills its own process there (as the
    out-of-memory killer would): it leaves a mark, so that no other run does. Epochs are slowed down, so that the
    other run is still in flight then."""

    relative_cost = 2.0  # started first, side by side

    def end_epoch(self, ctx, epoch):
        time.sleep(0.4)
        return super().end_epoch(ctx, epoch)

    def training_step(self, ctx, batch, epoch):
        if epoch == 1:
            try:
                os.close(os.open(os.environ["NB_TEST_MARK"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return F.cross_entropy(ctx.nets[0](batch.x), batch.y)
'''
KILLER_GRID = """
name = "deaths"
[grid]
datasets = ["blobs"]
methods = ["killer", "ce"]
noise = ["sym:0.2"]
seeds = {seeds}
[train]
epochs = 6
[datasets.blobs]
n_samples = 300
dim = 6
"""


@pytest.mark.slow
def test_a_run_that_kills_its_worker_fails_alone_and_the_grid_goes_on(tmp_path: Path) -> None:
    """One ``killer`` run SIGKILLs its worker in epoch 1 while the other trains in the other worker: the first is
    recorded as failed with the signal, the other finishes undisturbed (the numbers of a run on its own), a fresh
    worker takes the dead one's place for the CE runs, and ``run`` ends with "1 failed"."""
    from tests._plugins import cli, install_plugin

    env = install_plugin(tmp_path / "plugins", "nb_killer", KILLER, {"killer": "Killer"})
    env["NB_TEST_MARK"] = str(tmp_path / "mark")
    grid = tmp_path / "g.toml"
    grid.write_text(KILLER_GRID.format(seeds="[1, 2]"))
    out = tmp_path / "out"
    done = cli(["run", str(grid), "--out", str(out), "--workers", "2"], env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "1 failed" in done.stderr
    records = {(r["config"]["method"], r["status"]): r for r in ResultStore(out).iter_results()}
    assert len(records) == 3 and sorted(records) == [("ce", "done"), ("killer", "done"), ("killer", "failed")]
    dead = records[("killer", "failed")]
    assert dead["reason"].startswith("worker died: signal 9 (SIGKILL")
    survivor = records[("killer", "done")]
    assert survivor["resumed_from_epoch"] == 0
    ce = [r for r in ResultStore(out).iter_results() if r["config"]["method"] == "ce"]
    assert [r["status"] for r in ce] == ["done", "done"]
    pids = {r["pid"] for r in [*ce, dead, survivor]}
    assert len(pids) == 3  # a fresh worker replaced the dead one
    shown = cli(["status", str(out), "--no-slurm"], env).stdout
    assert "failed: 1" in shown and "worker died: signal 9" in shown
    alone = tmp_path / "alone"  # the survivor on its own: the same numbers, epoch by epoch
    grid.write_text(KILLER_GRID.format(seeds=f"[{survivor['config']['seed']}]"))
    assert cli(["run", str(grid), "--out", str(alone), "--workers", "1"], env).returncode == 0
    reference = ResultStore(alone).result(survivor["run_id"])
    volatile = {"train_time"}
    assert {k: v for k, v in survivor["metrics"].items() if k not in volatile} == \
        {k: v for k, v in reference["metrics"].items() if k not in volatile}
    epochs = [{k: v for k, v in row.items() if k not in ("epoch_time", "peak_mem_mb")}
              for store in (out, alone) for row in ResultStore(store).history(survivor["run_id"])]
    assert epochs[:6] == epochs[6:]


def test_a_refused_sbatch_is_one_line_with_its_message(tmp_path: Path, fake_sbatch: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    from noisybench.cli import main

    sbatch = Path(os.environ["PATH"].split(os.pathsep)[0]) / "sbatch"
    sbatch.write_text("#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Invalid partition name "
                      "specified' >&2\nexit 1\n")
    grid = tmp_path / "g.toml"
    grid.write_text('name = "g"\n[grid]\ndatasets = ["blobs"]\nmethods = ["ce"]\nnoise = ["sym:0.2"]\nseeds = [1]\n')
    code = main(["run", str(grid), "--out", str(tmp_path / "out"), "--executor", "slurm", "--partition", "nope",
                 "--detach"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "FailedJobError" not in err
    (line,) = [x for x in err.splitlines() if "Invalid partition" in x]
    assert line == ("noisybench: error: sbatch failed: sbatch: error: Batch job submission failed: Invalid partition "
                    "name specified; nothing was submitted")


def test_slurm_without_slurm_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    from noisybench.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    grid = tmp_path / "g.toml"
    grid.write_text('name = "g"\n[grid]\ndatasets = ["blobs"]\nmethods = ["ce"]\nnoise = ["sym:0.2"]\nseeds = [1]\n')
    assert main(["run", str(grid), "--out", str(tmp_path / "out"), "--executor", "slurm", "--detach"]) == 2
    assert "Slurm is not installed here" in capsys.readouterr().err


FILLER = '''
import errno
import os
import time
from pathlib import Path

import torch.nn.functional as F
import noisybench.io
from noisybench.method import Method

MARK = Path(os.environ["NB_TEST_DISK_MARK"])


class Filler(Method):
    """Cross-entropy, except that the disk fills up when the first run to start writes its final record (it
    leaves a mark, so that this happens once); the other runs are slow, so that the first one ends first."""

    def setup(self, ctx):
        try:
            os.close(os.open(MARK, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            self.slow = True
        else:
            self.slow = False
            real = noisybench.io.atomic_write_bytes

            def full(path, data):
                if Path(path).name == "result.json":
                    noisybench.io.atomic_write_bytes = real
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real(path, data)

            noisybench.io.atomic_write_bytes = full

    def training_step(self, ctx, batch, epoch):
        if self.slow:
            time.sleep(0.15)
        return F.cross_entropy(ctx.nets[0](batch.x), batch.y)
'''


@pytest.mark.slow
def test_a_full_disk_in_a_worker_stops_the_grid_with_one_line(tmp_path: Path) -> None:
    """The pool: a worker's run cannot write its record (ENOSPC). ``run`` starts no further run, lets the run
    in flight finish, and exits 2 with one line naming the file; the rerun does the rest."""
    from tests._plugins import cli, install_plugin

    env = install_plugin(tmp_path / "plugins", "nb_filler", FILLER, {"filler": "Filler"})
    env["NB_TEST_DISK_MARK"] = str(tmp_path / "mark")
    grid = tmp_path / "g.toml"
    grid.write_text(KILLER_GRID.replace('["killer", "ce"]', '["filler"]').format(seeds="[1, 2, 3, 4]"))
    out = tmp_path / "out"
    first = cli(["run", str(grid), "--out", str(out), "--workers", "2"], env)
    assert first.returncode == 2 and "Traceback" not in first.stderr, first.stderr[-3000:]
    (line,) = [x for x in first.stderr.splitlines() if x.startswith("noisybench: error:")]
    store = ResultStore(out)
    states = {r: store.stored(r).state for r in store.run_ids()}
    assert sorted(states.values()) == ["done", "missing"]  # the run in flight finished; 2 runs never started
    full = next(r for r, state in states.items() if state == "missing")
    assert f"no space left on device: cannot write {store.run_dir(full)}/result.json" in line
    again = cli(["run", str(grid), "--out", str(out), "--workers", "2"], env)
    assert again.returncode == 0 and "1 already finished, 3 to run" in again.stderr, again.stderr[-3000:]


def test_warm_up_loads_each_dataset_of_the_grid_once_and_the_runs_reuse_it(tmp_path: Path) -> None:
    """What a pool worker does while the plan is checked: each distinct dataset of the grid is loaded into the
    process's data cache, and the runs then take it from there (the same arrays, not a second load)."""
    from noisybench.data import _load_cached
    from noisybench.orchestration.executors.local import warm_specs, warm_up

    runs = tiny_runs(seeds=(1, 2), datasets=("blobs", "digits"))
    specs = warm_specs(runs)
    assert sorted(s["dataset"]["name"] for s in specs) == ["blobs", "digits"]
    _load_cached.cache_clear()
    warm_up(specs)
    assert _load_cached.cache_info().misses == 2
    records = [execute_run(run, tmp_path) for run in runs]
    assert [r["status"] for r in records] == ["done"] * 4
    assert _load_cached.cache_info().misses == 2  # every run found its dataset prepared
