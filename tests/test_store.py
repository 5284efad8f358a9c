"""Results store: atomic writes, corrupt files skipped, long-format loading."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from noisybench.config import DatasetRef, load_grid
from noisybench.io import atomic_write_json
from noisybench.orchestration.runner import execute_run, pending_runs
from noisybench.plan import expand_grid
from noisybench.store import ResultStore
from noisybench.store.results import load_history, load_results


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


@pytest.mark.parametrize("damage", ["{truncated", "{}", "[1, 2]", '{"status": "done"}'])
def test_corrupt_result_is_one_policy_everywhere(finished_store, tmp_path: Path, damage: str) -> None:
    out, runs, _ = finished_store
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    bad = runs[0].run_id
    (ResultStore(copy).run_dir(bad) / "result.json").write_text(damage)
    store = ResultStore(copy)
    assert store.stored(bad).state == "corrupt" and store.result(bad) is None
    assert [s.run_id for s in store.corrupt()] == [bad]
    frame = load_results(copy)  # listed as corrupt, never silently dropped
    assert len(frame) == len(runs) and frame.set_index("run_id").loc[bad, "status"] == "corrupt"
    assert [r.run_id for r in pending_runs(runs, store)] == [bad]  # run redoes it


def test_failed_run_is_recorded_and_not_retried_unless_asked(finished_store, tmp_path: Path) -> None:
    _, runs, _ = finished_store
    params = {"n_samples": 400, "dim": 8, "classes": 4, "separation": float("nan")}
    bad = replace(runs[0], dataset=DatasetRef("blobs", params))
    record = execute_run(bad, tmp_path)
    assert record["status"] == "failed" and record["reason"]
    stored = execute_run(bad, tmp_path)  # not retried: the stored record comes back
    assert (stored["finished_at"], stored["wall_time"]) == (record["finished_at"], record["wall_time"])
    retried = execute_run(bad, tmp_path, retry_failed=True)
    assert retried["status"] == "failed" and retried["wall_time"] != record["wall_time"]


@pytest.mark.parametrize("umask", [0o002, 0o022, 0o077])
def test_store_files_follow_the_umask(finished_store, tmp_path: Path, umask: int) -> None:
    """A teammate in the same group reads a shared store: files get 0666 & ~umask, as any tool's would."""
    _, runs, _ = finished_store
    old = os.umask(umask)
    try:
        execute_run(runs[0], tmp_path / "out")
    finally:
        os.umask(old)
    folder = ResultStore(tmp_path / "out").run_dir(runs[0].run_id)
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir() if p.is_file()}
    assert "result.json" in modes and set(modes.values()) == {0o666 & ~umask}, modes
    claims_log = tmp_path / "out" / "claims" / "log"
    assert claims_log.stat().st_mode & 0o777 == 0o666 & ~umask


def _deny(monkeypatch: pytest.MonkeyPatch, name: str, within: str = "") -> None:
    """Reading files called ``name`` (under a folder ``within``) fails as for another user's file of mode 0600."""
    import errno

    import noisybench.store as store_module

    real = store_module.read_json

    def read_json(path):
        if Path(path).name == name and within in Path(path).parts[:-1] + ("",):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(store_module, "read_json", read_json)


def test_a_result_this_user_cannot_read_is_unreadable_never_corrupt(finished_store, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out, runs, _ = finished_store
    _deny(monkeypatch, "result.json")
    store = ResultStore(out)
    stored = store.stored(runs[0].run_id)
    assert stored.state == "unreadable" and stored.record is None
    assert "unreadable by this user" in stored.problem and "corrupt" not in stored.problem
    assert store.corrupt() == []
    assert pending_runs(runs, store) == []  # nothing to redo, nothing to move aside
    frame = load_results(out)
    assert set(frame["status"]) == {"unreadable"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file whatever its mode")
def test_a_result_of_another_user_is_unreadable(finished_store, tmp_path: Path) -> None:
    import shutil

    out, runs, _ = finished_store
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    path = ResultStore(copy).run_dir(runs[0].run_id) / "result.json"
    path.chmod(0)
    try:
        stored = ResultStore(copy).stored(runs[0].run_id)
        assert stored.state == "unreadable" and "unreadable by this user" in stored.problem
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("target", ["result.json", "history.json", "checkpoint.pt", "config.json"])
def test_a_full_disk_stops_the_run_with_the_path_and_records_no_failure(tmp_path: Path, target: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC while writing any file of a run: an error naming the file, no failed record (the run is not at
    fault: a rerun after freeing space does it)."""
    import errno

    import noisybench.io as io_module
    from noisybench.store import StoreWriteError
    from tests.test_executors import tiny_runs

    real = io_module.atomic_write_bytes

    def full(path, data):
        if Path(path).name == target:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(io_module, "atomic_write_bytes", full)
    monkeypatch.setattr("noisybench.store.atomic_write_bytes", full)
    run = tiny_runs(seeds=(1,), epochs=3)[0]
    with pytest.raises(StoreWriteError, match=rf"no space left on device.*{run.run_id}/{target}") as caught:
        execute_run(run, tmp_path)
    assert "\n" not in str(caught.value)
    store = ResultStore(tmp_path)
    assert store.result(run.run_id) is None and not (store.run_dir(run.run_id) / "traceback.txt").exists()
    monkeypatch.undo()
    assert execute_run(run, tmp_path)["status"] == "done"  # space freed: the rerun finishes it


@pytest.mark.parametrize("state", ["list", "no-nets", "history-not-a-list", "nets-not-a-list", "text"])
def test_a_malformed_checkpoint_is_ignored_with_a_warning_and_removed(tmp_path: Path, state: str) -> None:
    from noisybench.io import atomic_torch_save

    path = tmp_path / "checkpoint.pt"
    good = {"run_id": "r", "history": [{"epoch": 0}], "nets": [{}], "optimizers": [{}], "method": {}}
    bad = {"list": [1, 2], "no-nets": {k: v for k, v in good.items() if k != "nets"}, "text": "hello",
           "history-not-a-list": {**good, "history": {"epoch": 0}}, "nets-not-a-list": {**good, "nets": {}}}[state]
    atomic_torch_save(bad, path)
    from noisybench.store import Checkpoint

    with pytest.warns(UserWarning, match="ignoring malformed checkpoint"):
        assert Checkpoint(path).load() is None
    assert not path.exists()
    atomic_torch_save(good, path)
    assert Checkpoint(path).load() == good
