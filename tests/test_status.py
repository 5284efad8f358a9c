"""``noisybench status`` from the store alone: done / running / queued / failed / pending (noisybench.status)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from noisybench.cli import main
from noisybench.orchestration.executors.slurm import queued_runs
from noisybench.orchestration.runner import execute_run
from noisybench.registry import METHODS
from noisybench.store import ResultStore
from noisybench.store.claims import CLAIMS, process_start
from noisybench.store.status import store_status
from tests.conftest import TINY_GRID
from tests.test_executors import tiny_runs


@pytest.fixture
def store_with_every_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list]:
    runs = tiny_runs(seeds=(1, 2, 3, 4, 5, 6))
    out = tmp_path / "out"
    ResultStore(out).record_plan("t", {r.run_id: r.label() for r in runs})
    execute_run(runs[0], out)  # done
    ResultStore(out).write_result({"run_id": runs[1].run_id, "config": runs[1].to_dict(), "status": "failed",
                                   "reason": "NonFiniteLossError: loss became nan"})
    parent = os.getppid()  # running: a live claim of another process on this host
    (out / CLAIMS).mkdir(parents=True, exist_ok=True)
    (out / CLAIMS / f"{runs[2].run_id}.0").write_text(json.dumps(
        {"host": socket.gethostname(), "pid": parent, "start": process_start(parent), "job": "9_1"}))
    (out / CLAIMS / f"{runs[3].run_id}.0").write_text(json.dumps(  # interrupted: dead holder -> pending
        {"host": socket.gethostname(), "pid": 2**22 + 17, "start": "1", "job": None}))
    ResultStore(out).record_submission("9", {"9_1": [runs[2].run_id], "9_2": [runs[4].run_id],
                                             "9_3": [runs[5].run_id]}, {}, 0.0)
    bin_dir = tmp_path / "bin"  # squeue lists 9_1 and 9_2 as active; 9_3 has left the queue
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/sh\nprintf '9_1\\n9_2\\n'\n")
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return out, runs


def test_every_state_is_classified(store_with_every_state: tuple[Path, list]) -> None:
    out, runs = store_with_every_state
    status = store_status(out, queued=queued_runs)
    ids = [r.run_id for r in runs]
    assert status.states["done"] == [ids[0]]
    assert status.states["failed"] == [ids[1]]
    assert status.states["running"] == [ids[2]]
    assert status.states["queued"] == [ids[4]]
    assert sorted(status.states["pending"]) == sorted([ids[3], ids[5]])
    assert "Slurm job 9_1" in status.reasons[ids[2]]
    assert status.reasons[ids[3]].startswith("interrupted (stale claim:") and ids[5] not in status.reasons
    assert store_status(out).states["queued"] == []


def test_status_command_shows_counts_and_reasons(store_with_every_state: tuple[Path, list],
                                                 capsys: pytest.CaptureFixture) -> None:
    out, runs = store_with_every_state
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == "done: 1  stale: 0  running: 1  queued: 1  failed: 1  pending: 2"
    assert f"failed  {runs[1].run_id}  blobs sym:0.2 ce seed=2  NonFiniteLossError: loss became nan" in text
    assert f"running {runs[2].run_id}" in text and "pending" not in text.splitlines()[1]
    assert main(["status", str(out), "--all"]) == 0
    assert capsys.readouterr().out.count("\npending ") == 2


def test_status_of_missing_directory_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["status", str(tmp_path / "nope")]) == 2
    assert "holds no runs" in capsys.readouterr().err


def test_stray_empty_folders_are_not_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "runs" / "deadbeefdeadbeef").mkdir(parents=True)  # e.g. left by a copy or a crash before the config
    assert store_status(out).counts() == {s: 0 for s in ("done", "stale", "running", "queued", "failed", "pending")}


class _TypoCE(METHODS.get("ce")):  # type: ignore[misc]
    """CE with a misspelt hyperparameter name: every run fails with KeyError: 'alpah'."""

    def training_step(self, ctx, batch, epoch):  # noqa: ANN001, ANN201
        return super().training_step(ctx, batch, epoch) * self.hp["alpah"]


def test_a_failed_run_shows_where_it_failed_its_traceback_file_and_the_retry_command(
    plugin, grid_file, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    plugin("ce-typo", _TypoCE)
    grid = grid_file(TINY_GRID.replace('methods = ["ce", "gce"]', 'methods = ["ce", "ce-typo"]').replace(
        "seeds = [1, 2]", "seeds = [1]"))
    out = tmp_path / "out"
    assert main(["run", str(grid), "--out", str(out), "--workers", "1"]) == 0
    assert f"1 failed — `noisybench status {out}` shows why and where" in capsys.readouterr().err
    (run_dir,) = [d for d in (out / "runs").iterdir() if "failed" in (d / "result.json").read_text()]
    assert "traceback" not in json.loads((run_dir / "result.json").read_text())  # kept out of the record
    assert main(["status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"KeyError: 'alpah' (at {__file__}:" in shown and "in training_step)" in shown
    path = shown.split("traceback: ")[1].splitlines()[0]
    assert Path(path).parent == run_dir and "self.hp[\"alpah\"]" in Path(path).read_text()
    assert f"rerun the failed runs after fixing them: noisybench run {grid.resolve()} --out {out} --retry-failed" \
        in shown
    assert main(["run", str(grid), "--out", str(out), "--workers", "1"]) == 0
    assert "2 already finished (1 of them failed: rerun with --retry-failed), 0 to run" in capsys.readouterr().err
