"""Against a real single-node Slurm (with accounting): a grid through sbatch, a cancelled job,
and a preempted job that requeues and resumes to identical metrics."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from noisybench.cli import main
from noisybench.config import parse_grid
from noisybench.orchestration.executors.slurm import SlurmOptions, make_slurm_executor, queued_runs, submit, wait
from noisybench.orchestration.runner import execute_run
from noisybench.plan import expand_grid
from noisybench.store.results import load_results
from noisybench.store.status import store_status

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

GRID = """
name = "sl"
[grid]
datasets = ["blobs"]
methods = ["ce", "gce"]
noise = ["sym:0.2"]
seeds = [1, 2]
[train]
epochs = 3
[datasets.blobs]
n_samples = 300
dim = 6
[slurm]
time = 15
runs_per_task = 2
"""


#: tests/plugins: CE whose epochs last $SLEEPY_SECONDS longer (the sleep changes no number).
SLEEPY_FOLDER = str(Path(__file__).resolve().parents[1] / "plugins")


def one_run(seed: int, epochs: int) -> list:
    """One slow-epoch CE run: the job is still training when a test cancels or preempts it."""
    return expand_grid(parse_grid({
        "name": "sl", "plugins": {"paths": [SLEEPY_FOLDER]},
        "grid": {"datasets": ["blobs"], "methods": ["sleepy-ce"], "noise": ["sym:0.2"], "seeds": [seed]},
        "train": {"epochs": epochs}, "datasets": {"blobs": {"n_samples": 300, "dim": 6}}}))


def scores(metrics: dict) -> dict:
    """Metrics without wall-clock timings: these must match exactly."""
    return {k: v for k, v in metrics.items() if not k.endswith("_time")}


def _wait_for(predicate, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _epochs(out: Path, run_id: str) -> int:
    path = out / "runs" / run_id / "history.json"
    try:
        return len(json.loads(path.read_text()))
    except (OSError, ValueError):
        return 0


def _scontrol(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=10).stdout


def test_grid_through_sbatch_matches_a_local_run(slurm_cluster: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    grid = tmp_path / "sl.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    assert main(["run", str(grid), "--out", str(out), "--executor", "slurm", "--partition", slurm_cluster]) == 0
    err = capsys.readouterr().err
    assert "as 2 array task(s)" in err and "[4/4]" in err
    frame = load_results(out)
    assert len(frame) == 4 and set(frame["status"]) == {"done"}
    jobs = json.loads(next((out / "jobs").glob("*.json")).read_text())
    array_id = jobs["array_id"]
    for run_id in frame["run_id"]:
        record = json.loads((out / "runs" / run_id / "result.json").read_text())
        assert record["slurm_job"].startswith(f"{array_id}_")
        assert json.loads((out / "runs" / run_id / "environment.json").read_text())["torch_threads"] == 1
        local = execute_run(record["config"], tmp_path / "local")  # same seed, this process, 1 thread
        assert scores(local["metrics"]) == scores(record["metrics"])
    def states() -> list[str]:  # results arrive before the job steps end: let sacct catch up
        return sorted(subprocess.run(["sacct", "-n", "-X", "-P", "-j", array_id, "-o", "JobID,State"],
                                     capture_output=True, text=True, timeout=10).stdout.split())

    _wait_for(lambda: states() == [f"{array_id}_0|COMPLETED", f"{array_id}_1|COMPLETED"], timeout=60,
              what=f"sacct to report both tasks COMPLETED (last: {states()})")
    assert main(["status", str(out)]) == 0
    assert capsys.readouterr().out.startswith("done: 4  stale: 0  running: 0  queued: 0  failed: 0  pending: 0")


def test_cancelled_job_is_recorded_as_cancelled(slurm_cluster: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEPY_SECONDS", "1")  # inherited by the sbatch job
    runs, out = one_run(5, 30), tmp_path / "out"
    options = SlurmOptions(partition=slurm_cluster, time=15)
    submission = submit(make_slurm_executor(out, options, "sl"), runs, out, options)
    _wait_for(lambda: _epochs(out, runs[0].run_id) >= 1, what="the job to train an epoch")
    assert store_status(out, queued=queued_runs).states["running"] == [runs[0].run_id]
    submission.jobs[0].cancel()
    records = wait(submission, out, poll=1.0)
    assert records[0]["status"] == "failed"
    assert records[0]["reason"].startswith(f"cancelled: Slurm job {submission.job_ids[0]} CANCELLED")
    status = store_status(out, queued=queued_runs)
    assert status.states["failed"] == [runs[0].run_id] and "cancelled" in status.reasons[runs[0].run_id]


def test_preempted_job_requeues_and_resumes_to_identical_metrics(slurm_cluster: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    runs, out = one_run(3, 6), tmp_path / "out"
    reference = execute_run(runs[0], tmp_path / "reference")  # uninterrupted, same seed, on CPU
    monkeypatch.setenv("SLEEPY_SECONDS", "1")  # inherited by the sbatch job
    options = SlurmOptions(partition=slurm_cluster, time=15)  # > 10 min: submitit sees a preemption
    submission = submit(make_slurm_executor(out, options, "sl"), runs, out, options)
    job = submission.jobs[0]
    _wait_for(lambda: _epochs(out, runs[0].run_id) >= 2, what="two epochs before the interruption")
    job._interrupt()  # SIGTERM then USR2, as Slurm does on preemption
    _wait_for(lambda: "Restarts=1" in _scontrol(job.job_id), what="the requeue")
    assert _epochs(out, runs[0].run_id) < 6, "the run finished before it was interrupted"
    # Slurm holds a requeued job for the credential lifetime (Reason=BeginTime; 120 s by default,
    # 20 s in the CI cluster); move its start time to now to keep CI short.
    _wait_for(lambda: "JobState=PENDING" in _scontrol(job.job_id), what="the requeued job to be pending")
    subprocess.run(["scontrol", "update", f"JobId={job.job_id}", "StartTime=now"], timeout=10)
    records = wait(submission, out, poll=1.0)
    result = records[0]
    assert result["status"] == "done" and result["resumed_from_epoch"] >= 2
    assert scores(result["metrics"]) == scores(reference["metrics"])
    stored = json.loads((out / "runs" / runs[0].run_id / "history.json").read_text())
    keys = ["epoch", "lr", "train_loss", "val_acc", "test_acc"]
    assert [{k: row[k] for k in keys} for row in stored] == [{k: row[k] for k in keys} for row in reference_history(
        tmp_path / "reference", runs[0].run_id)]
    log = next((out / "slurm").rglob("*_log.err")).read_text()
    assert "Caught signal SIGUSR2" in log and "this job is preempted" in log


def reference_history(out: Path, run_id: str) -> list[dict]:
    return json.loads((out / "runs" / run_id / "history.json").read_text())


def test_detach_returns_at_once_and_status_follows_from_the_store(slurm_cluster: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    grid = tmp_path / "sl.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    start = time.time()
    assert main(["run", str(grid), "--out", str(out), "--executor", "slurm", "--detach",
                 "--partition", slurm_cluster, "--runs-per-task", "1"]) == 0
    assert time.time() - start < 10 and "detached" in capsys.readouterr().err
    first = store_status(out, queued=queued_runs).counts()
    assert sum(first.values()) == 4 and first["done"] < 4 and first["queued"] + first["running"] > 0
    assert main(["run", str(grid), "--out", str(out), "--executor", "slurm", "--detach"]) == 0  # a second driver
    err = capsys.readouterr().err
    assert "already queued or running in Slurm jobs: not resubmitted" in err and "submitted" not in err.replace(
        "not resubmitted", "")
    assert len(list((out / "jobs").glob("*.json"))) == 1
    _wait_for(lambda: store_status(out, queued=queued_runs).counts()["done"] == 4, timeout=180,
              what="the detached jobs")
    assert main(["run", str(grid), "--out", str(out), "--executor", "slurm"]) == 0  # nothing left to submit
    assert "4 already finished, 0 to run" in capsys.readouterr().err


#: One of each of sbatch's six --time forms, plus no limit.
TIME_FORMS = ["45", "30:00", "1:30", "1:30:00", "2-12", "1-1:00", "1-02:03:04", "UNLIMITED"]


def _time_limit(job_id: str) -> str:
    text = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
    return text.split("TimeLimit=", 1)[1].split()[0]


def test_time_limits_mean_what_sbatch_means(slurm_cluster: str, tmp_path: Path) -> None:
    """Each form through our options and submitit gives the TimeLimit that sbatch itself gives it."""
    submitted: list[str] = []
    try:
        for form in TIME_FORMS:
            table = {"time": form, "partition": slurm_cluster, "sbatch": {"hold": True}}
            options = SlurmOptions.from_sources(table, {})
            job = make_slurm_executor(tmp_path / form.replace(":", "_"), options, "time").submit(sum, [1, 2])
            theirs = subprocess.run(["sbatch", "--parsable", "--hold", f"--time={form}", f"--partition={slurm_cluster}",
                                     f"--output={tmp_path}/%j.out", "--wrap", "true"],
                                    capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
            submitted += [job.job_id, theirs]
            assert _time_limit(job.job_id) == _time_limit(theirs), form
    finally:
        if submitted:
            subprocess.run(["scancel", *submitted], check=False)


def test_a_tuned_grid_detached_submits_its_evaluation_on_the_next_run(slurm_cluster: str, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    grid = tmp_path / "tuned.toml"
    grid.write_text(GRID.replace('name = "sl"', 'name = "sl-tuned"') + "[tune]\nbudget = 2\nseeds = [11]\n")
    out = tmp_path / "out"
    args = ["run", str(grid), "--out", str(out), "--executor", "slurm", "--partition", slurm_cluster]
    done = lambda: len(store_status(out, queued=queued_runs).states["done"])  # noqa: E731
    assert main([*args, "--detach"]) == 0  # the tuning stage: CE trial 0, GCE trials 0 and 1, on seed 11
    assert "run the same command again once those jobs have finished" in capsys.readouterr().err
    _wait_for(lambda: done() == 3, timeout=300, what="the three trial runs")
    assert main([*args, "--detach"]) == 0  # chooses, then submits the evaluation on seeds 1 and 2
    assert "gce on blobs sym:0.2: trial " in capsys.readouterr().err
    _wait_for(lambda: done() == 3 + 4, timeout=300, what="the four evaluation runs")
    assert main(args) == 0  # nothing left to run: the closing table with the tuning
    assert "Tuning: budget 2 trials per method and setting (effective: CE 1, GCE 2)" in capsys.readouterr().out
