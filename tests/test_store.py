"""Results store: atomic writes, corrupt files skipped, long-format loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from noisybench.config import load_grid
from noisybench.plan import expand_grid
from noisybench.results import load_history, load_results
from noisybench.runner import execute_run, pending_runs
from noisybench.store import ResultStore, atomic_write_json


def test_atomic_write_never_leaves_partial_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    atomic_write_json(target, {"a": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # temp file cleaned up


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory: pytest.TempPathFactory):
    from tests.conftest import TINY_GRID

    folder = tmp_path_factory.mktemp("store")
    grid_path = folder / "g.toml"
    grid_path.write_text(TINY_GRID)
    runs = expand_grid(load_grid(grid_path))
    out = folder / "out"
    records = [execute_run(r, out) for r in runs]
    return out, runs, records


def test_run_folder_is_self_describing(finished_store) -> None:
    out, runs, records = finished_store
    assert all(r["status"] == "done" for r in records)
    folder = ResultStore(out).run_dir(runs[0].run_id)
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "environment.json", "noise.json", "noisy_labels.npy", "history.json", "result.json"} <= names
    assert "checkpoint.pt" not in names
    env = json.loads((folder / "environment.json").read_text())
    assert {"python", "torch", "numpy", "git_commit", "hostname"} <= set(env)
    noise = json.loads((folder / "noise.json").read_text())
    assert noise["nominal_rate"] == 0.2 and len(noise["transition_counts"]) == 4


def test_finished_runs_are_not_redone(finished_store) -> None:
    out, runs, records = finished_store
    assert pending_runs(runs, ResultStore(out)) == []
    again = execute_run(runs[0], out)
    assert again == records[0]


def test_load_results_long_format(finished_store) -> None:
    out, runs, _ = finished_store
    frame = load_results(out)
    assert len(frame) == len(runs)
    for column in ["dataset", "noise", "method", "seed", "status", "noise_rate_actual", "val_selected", "last",
                   "mean_last_k", "best_on_test", "hparam_sources"]:
        assert column in frame.columns
    assert set(frame["noise_rate_actual"].round(2)) == {0.2}
    history = load_history(out)
    assert len(history) == 3 * len(runs) and {"run_id", "epoch", "test_acc"} <= set(history.columns)


def test_corrupt_result_is_skipped_with_warning(finished_store, tmp_path: Path) -> None:
    out, runs, _ = finished_store
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (ResultStore(copy).run_dir(runs[0].run_id) / "result.json").write_text("{truncated")
    with pytest.warns(UserWarning, match="skipping corrupt result"):
        assert len(list(ResultStore(copy).iter_results())) == len(runs) - 1
    frame = load_results(copy)  # no warning: a row with status "corrupt" that the report lists
    assert (frame["status"] == "corrupt").sum() == 1 and (frame["status"] != "corrupt").sum() == len(runs) - 1


def test_failed_run_is_recorded_and_not_retried_unless_asked(finished_store, tmp_path: Path) -> None:
    _, runs, _ = finished_store
    bad = runs[0]
    bad.dataset = {"name": "blobs", "params": {"n_samples": 400, "dim": 8, "classes": 4, "separation": float("nan")}}
    record = execute_run(bad, tmp_path)
    assert record["status"] == "failed" and record["reason"]
    stored = execute_run(bad, tmp_path)  # not retried: the stored record comes back
    assert (stored["finished_at"], stored["wall_time"]) == (record["finished_at"], record["wall_time"])
    retried = execute_run(bad, tmp_path, retry_failed=True)
    assert retried["status"] == "failed" and retried["wall_time"] != record["wall_time"]
