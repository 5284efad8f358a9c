"""``noisybench run`` of a tuned grid: both stages, selection on noisy validation only, evaluation runs identical
to a plain grid's, resumption after the driver is killed, and the reports of the tuning."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from noisybench.cli import main
from noisybench.config import load_grid
from noisybench.reporting import ReportOptions, make_report
from noisybench.reporting.tuning import split_trials, summarize
from noisybench.store import ResultStore
from noisybench.store.results import load_history, load_results
from noisybench.tuning.run import run_tuned
from noisybench.tuning.selection import SELECTION_FIELDS, select_trials
from noisybench.tuning.trials import choose, plan_tuning
from tests.conftest import TINY_GRID

TUNE = "[tune]\nbudget = 4\nseeds = [11, 12]\n"
GRID = TINY_GRID.replace('name = "tiny"', 'name = "tiny-tuned"').replace(
    'methods = ["ce", "gce"]', 'methods = ["ce", "gce", "elr"]') + TUNE
TEST_METRICS = ("val_selected", "last", "mean_last_k", "best_on_test")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny tuned grid, run once: (grid file, results folder)."""
    folder = tmp_path_factory.mktemp("tuned")
    grid = folder / "g.toml"
    grid.write_text(GRID)
    out = folder / "out"
    assert main(["run", str(grid), "--out", str(out), "--workers", "1"]) == 0
    return grid, out


def _eval_records(out: Path) -> dict[str, dict]:
    return {r["run_id"]: r for r in ResultStore(out).iter_results() if r["config"].get("tuning", {}).get("stage")
            == "eval"}


def test_both_stages_run_and_the_evaluation_uses_the_chosen_trial(tuned) -> None:
    grid, out = tuned
    plan = plan_tuning(load_grid(grid))
    records = list(ResultStore(out).iter_results())
    stages = [r["config"]["tuning"]["stage"] for r in records]
    assert stages.count("tune") == 18 and stages.count("eval") == 6
    chosen = choose(plan, ResultStore(out))
    for record in _eval_records(out).values():
        config = record["config"]
        cell = (config["method"], config["dataset"]["name"], config["noise"])
        assert config["tuning"]["trial"] == chosen[cell].trial and config["seed"] in (1, 2)
        trial = next(c for c in plan.cells if c.key == cell).trials[chosen[cell].trial]
        assert config["hparams"] == trial.hparams and config["tuning"]["values"] == trial.values
    # the choice is the best mean noisy-validation accuracy, ties to the lower trial
    for cell, choice in chosen.items():
        vals = {}
        for r in records:
            c = r["config"]
            if (c["method"], c["dataset"]["name"], c["noise"]) == cell and c["tuning"]["stage"] == "tune":
                vals.setdefault(c["tuning"]["trial"], []).append(r["metrics"]["val_acc_best"])
        means = {t: sum(v) / len(v) for t, v in vals.items()}
        best = max(means.values())
        assert choice.trial == min(t for t, m in means.items() if m == best)


def test_selection_never_reads_the_test_set(tuned, tmp_path: Path) -> None:
    """Permuting the test metrics of every trial among the trials (and making the worst trial the best on test)
    leaves every choice unchanged, in ``run``'s selection and in the report's."""
    grid, out = tuned
    plan = plan_tuning(load_grid(grid))
    before = {k: c.trial for k, c in choose(plan, ResultStore(out)).items()}
    frame = load_results(out)
    report_before = {(s.method, s.dataset, s.noise): s.chosen for s in summarize(split_trials(frame)[1]).settings}
    assert report_before == before
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    store = ResultStore(copy)
    trials = sorted((r for r in store.iter_results() if r["config"]["tuning"]["stage"] == "tune"),
                    key=lambda r: r["metrics"]["val_acc_best"])
    tests = sorted(({m: r["metrics"][m] for m in TEST_METRICS} for r in trials), key=lambda m: -m["best_on_test"])
    for record, test in zip(trials, tests):  # the worst trial on validation gets the best test accuracy, and so on
        record["metrics"].update(test)
        store.write_result(record)
    assert {k: c.trial for k, c in choose(plan, store).items()} == before
    permuted = load_results(copy)
    assert not permuted["best_on_test"].equals(frame["best_on_test"])
    report_after = {(s.method, s.dataset, s.noise): s.chosen for s in summarize(split_trials(permuted)[1]).settings}
    assert report_after == before


def test_selection_reads_only_its_fields() -> None:
    class Row(dict):
        def __getitem__(self, key: str):
            assert key in SELECTION_FIELDS, f"selection read {key!r}"
            return super().__getitem__(key)

    rows = [Row(method="m", dataset="d", noise="n", trial=t, seed=s, status="done", val=v, test_acc=99.0 - v)
            for t, v in ((0, 80.0), (1, 90.0), (2, 90.0)) for s in (1, 2)]
    choice = select_trials(rows)[("m", "d", "n")]
    assert choice.trial == 1 and choice.best == 90.0 and choice.worst == 80.0  # ties to the lower trial


def test_a_trial_with_a_failed_seed_does_not_count() -> None:
    rows = [{"method": "m", "dataset": "d", "noise": "n", "trial": t, "seed": s, "status": st, "val": v}
            for t, s, st, v in ((0, 1, "done", 70.0), (0, 2, "done", 70.0), (1, 1, "done", 99.0),
                                (1, 2, "failed", None), (2, 1, "done", 71.0), (2, 2, "done", float("nan")))]
    choice = select_trials(rows)[("m", "d", "n")]
    assert choice.trial == 0 and choice.scores[1].mean is None and choice.scores[2].mean is None


def test_evaluation_runs_are_bit_identical_to_a_plain_grid_with_the_chosen_values(tuned, tmp_path: Path) -> None:
    grid, out = tuned
    evaluation = _eval_records(out)
    fixed = {}
    for record in evaluation.values():
        config = record["config"]
        fixed[config["method"]] = config["tuning"]["values"]
    tables = "".join(f"[methods.{m}]\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())
                     for m, values in fixed.items() if values)
    plain = tmp_path / "plain.toml"
    plain.write_text(GRID.replace(TUNE, "").replace('name = "tiny-tuned"', 'name = "tiny-plain"') + tables)
    plain_out = tmp_path / "plain"
    assert main(["run", str(plain), "--out", str(plain_out), "--workers", "1"]) == 0
    store, plain_store = ResultStore(out), ResultStore(plain_out)
    plain_ids = {r["run_id"] for r in plain_store.iter_results()}
    assert plain_ids == set(evaluation)
    timings = {"epoch_time", "peak_mem_mb", "train_time"}

    def numbers(values: dict) -> dict:
        return {k: v for k, v in values.items() if k not in timings}

    for run_id, record in evaluation.items():
        other = plain_store.result(run_id)
        assert numbers(other["metrics"]) == numbers(record["metrics"])
        assert other["noise"]["sha256"] == record["noise"]["sha256"]
        assert [numbers(r) for r in store.history(run_id)] == [numbers(r) for r in plain_store.history(run_id)]
    # the tuned grid run where the plain grid ran trains its trials only: the evaluation runs are the plain ones
    stamps = {run_id: plain_store.result(run_id)["finished_at"] for run_id in plain_ids}
    assert main(["run", str(grid), "--out", str(plain_out), "--workers", "1"]) == 0
    assert {run_id: plain_store.result(run_id)["finished_at"] for run_id in plain_ids} == stamps
    assert len(list(plain_store.iter_results())) == 6 + 18


def test_reports_say_how_tuning_was_done(tuned) -> None:
    _, out = tuned
    frame, history = load_results(out), load_history(out)
    text, board = make_report(frame)
    assert board is not None and board.tuning is not None
    assert {c.n for c in board.cells.values()} == {2}  # trial runs are not leaderboard rows
    assert "Tuning: budget 4 trials per method and setting (effective: CE 1, ELR 4, GCE 4) on tuning seeds 11, 12" \
        in text and "ties to the lower trial number" in text
    tuning, _ = make_report(frame, ReportOptions(fmt="tuning"))
    chosen = {s.method: s for s in board.tuning.settings}
    assert "1/4" in tuning and "4/4" in tuning and "(nothing tuned)" in tuning
    gce = chosen["gce"]
    assert f"q={gce.values['q']:.4g}" in tuning and gce.best >= gce.worst and gce.run_seconds > 0
    latex, _ = make_report(frame, ReportOptions(fmt="latex"))
    caption = latex[latex.index("\\caption{"):latex.index("\\label")]
    assert "budget 4 trials" in caption and "tuning seeds 11, 12" in caption and "best mean noisy-validation" in caption
    html, _ = make_report(frame, ReportOptions(fmt="html"), history)
    assert "<h2>Tuning</h2>" in html and "tuning seeds 11, 12" in html
    assert html.count("the trial chosen in a setting</figcaption>") == 2  # one figure per tuned method (GCE, ELR)
    csv, _ = make_report(frame, ReportOptions(fmt="csv"))
    header = csv.splitlines()[0].split(",")
    assert "trial" in header and "tune_stage" in header
    data = json.loads(make_report(frame, ReportOptions(fmt="json"))[0])
    assert {s["method"] for s in data["tuning"]["settings"]} == {"ce", "gce", "elr"}


def test_a_store_with_only_trials_says_the_evaluation_has_not_run(tuned, tmp_path: Path) -> None:
    _, out = tuned
    frame = load_results(out)
    trials = frame[frame["tune_stage"] == "tune"]
    from noisybench.errors import NoisybenchError

    with pytest.raises(NoisybenchError, match="only tuning-stage runs so far"):
        make_report(trials)
    assert "Tuning" in make_report(trials, ReportOptions(fmt="tuning"))[0]


def test_detached_tuning_stage_then_evaluation_on_the_next_run(tuned, tmp_path: Path) -> None:
    """Slurm with --detach: the first call submits the trials and says so; once they have finished, the next call
    chooses and submits the evaluation (a fake stage stands in for the executor)."""
    grid, out = tuned
    plan = plan_tuning(load_grid(grid))
    empty = ResultStore(tmp_path / "empty")
    calls, lines = [], []

    class Decision:
        def __init__(self, runs):
            self.current = {r.run_id for r in runs}

    def stage(runs, planned, expected, what):
        calls.append(what)
        return None, Decision(runs)  # submitted, not waited for

    assert run_tuned(plan, empty, stage, lambda *a: 0, detach=True, log=lines.append) == 0
    assert calls == ["tuning stage"] and "run the same command again once those jobs have finished" in lines[-1]
    calls.clear()
    assert run_tuned(plan, ResultStore(out), stage, lambda *a: 1, detach=True, log=lines.append) == 0
    assert calls == ["tuning stage", "evaluation stage"]
    assert any(line.startswith("gce on blobs sym:0.2: trial ") for line in lines)


KILL_GRID = """
name = "kill-tuned"
[plugins]
paths = ["{plugins}"]
[grid]
datasets = ["blobs"]
methods = ["sleepy-ce", "sleepy-elr"]
noise = ["sym:0.2"]
seeds = [1, 2]
[train]
epochs = 3
[datasets.blobs]
n_samples = 300
dim = 6
[tune]
budget = 4
seeds = [11, 12]
"""


def _cli(args: list[str], sleep: float) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLEEPY_SECONDS": str(sleep), "NOISYBENCH_CHECKPOINT_SECONDS": "0"}
    return subprocess.Popen([sys.executable, "-m", "noisybench.cli", *args], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_killing_the_driver_in_the_tuning_stage_changes_nothing(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(KILL_GRID.replace("{plugins}", str(Path(__file__).parent / "plugins")))
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = _cli(["run", str(grid), "--out", str(straight), "--workers", "1"], sleep=0)
    assert done.wait(timeout=600) == 0, done.stderr.read().decode()[-2000:]
    proc = _cli(["run", str(grid), "--out", str(killed), "--workers", "1"], sleep=0.3)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and sum(1 for _ in ResultStore(killed).iter_results()) < 3:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # mid tuning stage: 10 trial runs, 3 finished
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = list(ResultStore(killed).iter_results())
    assert 3 <= len(finished) < 10 and all(r["config"]["tuning"]["stage"] == "tune" for r in finished)
    rerun = _cli(["run", str(grid), "--out", str(killed), "--workers", "1"], sleep=0)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err.decode()[-2000:]
    a, b = load_results(straight), load_results(killed)
    assert list(a["run_id"]) == list(b["run_id"]) and len(a) == 10 + 4
    for column in ("trial", "tune_stage", "val_acc_best", *TEST_METRICS):
        assert a[column].tolist() == b[column].tolist(), column
    chosen = lambda f: sorted(zip(f[f["tune_stage"] == "eval"]["method"], f[f["tune_stage"] == "eval"]["trial"]))  # noqa: E731
    assert chosen(a) == chosen(b)
