"""Results that stay true: stale runs after an edited plugin or a replaced label file, corrupt runs moved
aside and redone, forced reruns, and a closing table of exactly the grid's current runs
(noisybench.orchestration.resume)."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from noisybench.cli import main
from noisybench.registry import METHODS
from noisybench.store import ResultStore

PLUGIN = '''
import torch.nn.functional as F
from noisybench.method import Method
from noisybench.registry import register_method

@register_method("edit-me")
class EditMe(Method):
    """A plugin whose source the test edits."""

    def training_step(self, ctx, batch, epoch):
        logits = ctx.nets[0](batch.x)
        return F.cross_entropy(logits, batch.y) + 1.0 * logits.pow(2).mean()
'''


def grid_text(methods: list[str], noise: str = "sym:0.2", extra: str = "") -> str:
    return textwrap.dedent(f"""
        name = "g"
        [grid]
        datasets = ["blobs"]
        methods = {json.dumps(methods)}
        noise = ["{noise}"]
        seeds = [1, 2]
        [train]
        epochs = 2
        [datasets.blobs]
        n_samples = 200
        dim = 4
        {extra}
    """)


def run(capsys: pytest.CaptureFixture, grid: Path, out: Path, *flags: str) -> tuple[int, str, str]:
    code = main(["run", str(grid), "--out", str(out), "--workers", "1", *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A method plugin in its own importable module, registered for this test only."""
    path = tmp_path / "plug" / "nb_edit_me.py"
    path.parent.mkdir()
    path.write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(path.parent))
    METHODS.list()
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    monkeypatch.setattr(METHODS, "_origins", dict(METHODS._origins))
    monkeypatch.delitem(sys.modules, "nb_edit_me", raising=False)
    __import__("nb_edit_me")
    return path


def test_an_edited_plugin_makes_exactly_its_runs_stale(tmp_path: Path, plugin_module: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    grid, out = tmp_path / "g.toml", tmp_path / "out"
    grid.write_text(grid_text(["ce", "edit-me"]))
    assert run(capsys, grid, out)[0] == 0
    code, _, err = run(capsys, grid, out)
    assert code == 0 and "4 already finished, 0 to run" in err and "stale" not in err  # nothing changed
    prose = PLUGIN.replace("whose source the test edits", "whose source this test edits, reworded")
    prose = prose.replace("        logits = ", "        # a comment\n\n        logits  =  ")
    plugin_module.write_text(prose)  # docstring, comment and layout: no number can move
    code, _, err = run(capsys, grid, out)
    assert code == 0 and "4 already finished, 0 to run" in err and "stale" not in err
    plugin_module.write_text(PLUGIN.replace("1.0 * logits", "0.0 * logits"))  # the user's edit
    code, table, err = run(capsys, grid, out)
    assert code == 0 and "2 finished run(s) are stale" in err and "edit-me on blobs (2)" in err
    assert "2 already finished, 2 stale, 0 to run" in err and "--rerun-stale" in err
    assert "edit-me" not in table.split("Across")[0].replace("stale", "")  # stale runs are not in the table
    status = main(["status", str(out), "--no-slurm"])
    assert status == 0 and "stale: 2" in capsys.readouterr().out
    code, table, err = run(capsys, grid, out, "--keep-stale")
    assert "2 already finished" not in err and "4 already finished" in err and "edit-me" in table.lower()
    code, _, err = run(capsys, grid, out, "--rerun-stale")
    assert code == 0 and "rerunning them" in err and "2 to run" in err
    retired = sorted(p.name.split(".")[0] for p in (out / "retired").iterdir())
    assert len(retired) == 2  # the old folders are kept aside, never deleted
    assert "stale" not in run(capsys, grid, out)[2]


def test_a_replaced_label_file_makes_its_runs_stale(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = tmp_path / "labels.npy"
    train_size = 150  # blobs: 200 samples, 25 % test split
    np.save(labels, np.arange(train_size) % 3)
    grid, out = tmp_path / "g.toml", tmp_path / "out"
    grid.write_text(grid_text(["ce"], noise=f"human:{labels}"))
    assert run(capsys, grid, out)[0] == 0
    assert "stale" not in run(capsys, grid, out)[2]
    np.save(labels, (np.arange(train_size) + 1) % 3)  # same path, other labels
    code, _, err = run(capsys, grid, out)
    assert "2 finished run(s) are stale" in err and "ce on blobs (2)" in err


@pytest.mark.parametrize("damage", ["truncated", "empty", "list", "stray", "labels"])
def test_a_corrupt_run_is_named_everywhere_moved_aside_and_redone(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                  damage: str) -> None:
    grid, out = tmp_path / "g.toml", tmp_path / "out"
    grid.write_text(grid_text(["ce"]))
    assert run(capsys, grid, out)[0] == 0
    store = ResultStore(out)
    bad = sorted(store.run_ids())[0]
    folder = store.run_dir(bad)
    result = next(p for p in folder.iterdir() if p.suffix == ".json" and "status" in p.read_text())
    if damage == "labels":
        next(p for p in folder.iterdir() if p.suffix == ".npy").unlink()
    elif damage == "stray":
        for child in folder.iterdir():
            child.unlink()
        result.write_text('{"status": "done"}')
    else:
        result.write_text({"truncated": '{"status": "do', "empty": "{}", "list": "[1, 2]"}[damage])
    assert main(["status", str(out), "--no-slurm", "--all"]) == 0
    assert any(bad in line and "corrupt" in line for line in capsys.readouterr().out.splitlines())
    assert main(["report", str(out)]) == 0
    assert bad in capsys.readouterr().out  # listed among the report's warnings
    code, _, err = run(capsys, grid, out)
    assert code == 0 and f"corrupt run {bad}" in err and "rerunning" in err
    assert store.stored(bad).state == "done" and any((out / "retired").iterdir())


def test_force_reruns_a_selection_and_keeps_the_old_folders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    grid, out = tmp_path / "g.toml", tmp_path / "out"
    grid.write_text(grid_text(["ce", "gce"]))
    assert run(capsys, grid, out)[0] == 0
    code, _, err = run(capsys, grid, out, "--force", "--methods", "gce")
    assert code == 0 and "rerunning 2 finished run(s)" in err and "2 already finished, 0 stale" not in err
    assert "2 already finished" in err and "2 to run" in err
    assert len(list((out / "retired").iterdir())) == 2
    assert main(["run", str(grid), "--out", str(out), "--methods", "gce"]) == 2  # a selection needs --force
    assert "add --force" in capsys.readouterr().err


def test_the_closing_table_shows_the_grids_current_runs_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    grid, out = tmp_path / "g.toml", tmp_path / "out"
    grid.write_text(grid_text(["ce", "gce"], extra="[methods.gce]\nq = 0.5"))
    assert run(capsys, grid, out)[0] == 0
    grid.write_text(grid_text(["ce", "gce"], extra="[methods.gce]\nq = 0.7"))  # reverted hyperparameter: new ids
    code, table, _ = run(capsys, grid, out)
    assert code == 0 and "repeat a seed with another configuration" not in table  # only this grid's runs
    assert main(["report", str(out)]) == 0
    assert "repeat a seed with another configuration" in capsys.readouterr().out  # the store holds both


LEGACY = Path(__file__).parent / "fixtures" / "legacy_store"


def test_a_store_made_before_the_fingerprint_change_is_current(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture is a store written by the code of the commit in ``fixtures/legacy_store/COMMIT`` (fingerprint
    scheme 1: raw source bytes), rebuilt by ``fixtures/legacy_store/regenerate.sh``. Its runs must stay current:
    their fingerprints are translated through the migration table
    (``noisybench/orchestration/fingerprint_legacy.json``).

    When this test fails because the core or a plugin the fixture uses changed for real: if the change is
    shown to move no number (the quick grid bit-identical), regenerate the table
    (``python -m noisybench.orchestration.fingerprint_legacy migrate --legacy-commit 70a96d9``); if it moves numbers,
    the fixture's runs are rightly stale: change the expectations below to ``stale: 4`` (and say so in the commit).
    """
    from noisybench.orchestration import fingerprint_legacy

    out = tmp_path / "store"
    shutil.copytree(LEGACY / "store", out)
    records = [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/result.json"))]
    assert len(records) == 4 and all("scheme" not in r["fingerprint"] for r in records)  # really scheme 1
    assert main(["status", str(out), "--no-slurm"]) == 0  # the plan the old code wrote
    assert "done: 4  stale: 0" in capsys.readouterr().out
    code, table, err = run(capsys, LEGACY / "grid.toml", out)  # plans with the current code, then selects
    assert code == 0 and "4 already finished, 0 to run" in err and "stale" not in err and "Blobs" in table
    planned = ResultStore(out).planned_fingerprints()
    assert {r["run_id"]: r["fingerprint_digest"] for r in records}.items().isdisjoint(planned.items())
    assert main(["status", str(out), "--no-slurm"]) == 0
    assert "done: 4  stale: 0" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0 and "stale" not in capsys.readouterr().out
    for record in records:  # the noise the old code drew is the noise the current code draws
        realized = next((out / "runs").glob(f"{record['run_id']}/*.npy"))
        assert record["noise"]["sha256"] == _realize(record["config"]).sha256
        assert np.array_equal(np.load(realized), _realize(record["config"]).labels)
    monkeypatch.setattr(fingerprint_legacy, "TABLE", tmp_path / "no-table.json")  # without the migration table
    fingerprint_legacy.clear_caches()
    try:
        assert main(["status", str(out), "--no-slurm"]) == 0
        assert "done: 0  stale: 4" in capsys.readouterr().out
    finally:
        monkeypatch.undo()
        fingerprint_legacy.clear_caches()


def _realize(config: dict):
    from noisybench.data.prepare import prepare_data

    return prepare_data(config["dataset"]["name"], config["dataset"]["params"], config["noise"], config["seed"],
                        config["train"]["val_fraction"])[1].noise
BROKEN = '''
import torch.nn.functional as F
from noisybench.method import Method


class Broken(Method):
    """A method whose author forgot something: every run fails at its first step."""

    def training_step(self, ctx, batch, epoch):
        raise ValueError("broken on purpose")
'''
FIXED = BROKEN.replace('raise ValueError("broken on purpose")', "return F.cross_entropy(ctx.nets[0](batch.x), batch.y)")


@pytest.mark.slow
def test_the_advice_after_a_failure_works_as_written(tmp_path: Path) -> None:
    """A failing method, then the user fixes its file and runs the command ``status`` prints: every failed run
    is retried, ends done, and keeps the record of its failed attempt."""
    import shlex

    from tests._plugins import cli, install_plugin

    env = install_plugin(tmp_path / "plugins", "nb_broken", BROKEN, {"broken": "Broken"})
    grid, out = tmp_path / "g.toml", tmp_path / "out"
    grid.write_text(grid_text(["ce", "broken"]))
    first = cli(["run", str(grid), "--out", str(out), "--workers", "1"], env)
    assert first.returncode == 0 and "2 failed" in first.stderr and "--retry-failed" in first.stderr, first.stderr
    status = cli(["status", str(out), "--no-slurm"], env)
    assert "failed: 2" in status.stdout and "ValueError: broken on purpose" in status.stdout
    advice = status.stdout.split("rerun the failed runs after fixing them: ")[1].splitlines()[0]
    (tmp_path / "plugins" / "nb_broken.py").write_text(FIXED)  # the fix
    argv = shlex.split(advice)
    assert argv[:2] == ["noisybench", "run"] and "--retry-failed" in argv
    retry = cli([*argv[1:], "--workers", "1"], env)
    assert retry.returncode == 0, retry.stderr[-2000:]
    assert "2 to run" in retry.stderr and "stale" not in retry.stderr and "failed" not in retry.stderr
    status = cli(["status", str(out), "--no-slurm"], env)
    assert status.stdout.splitlines()[0].startswith("done: 4  stale: 0") and "failed: 0" in status.stdout
    store = ResultStore(out)
    retried = [r for r in store.iter_results() if r["config"]["method"] == "broken"]
    assert len(retried) == 2 and {r["status"] for r in retried} == {"done"}
    for record in retried:  # the history: failed, then retried
        (attempt,) = record["attempts"]
        assert attempt["status"] == "failed" and attempt["reason"] == "ValueError: broken on purpose"
        assert attempt["raised_at"].endswith("in training_step") and attempt["finished_at"]
        kept = store.run_dir(record["run_id"]) / attempt["folder"]
        assert "broken on purpose" in (kept / "traceback.txt").read_text()
        assert json.loads((kept / "result.json").read_text())["status"] == "failed"


def test_a_failed_run_is_failed_not_stale_when_its_code_changed(tmp_path: Path, plugin_module: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """A fixed method's failed runs stay failed (never stale, never silently counted as finished), and
    --retry-failed reruns them whatever their fingerprint."""
    from noisybench.orchestration.runner import classify

    grid, out = tmp_path / "g.toml", tmp_path / "out"
    grid.write_text(grid_text(["edit-me"]))
    assert run(capsys, grid, out)[0] == 0
    store = ResultStore(out)
    for record in store.iter_results():  # as if the method had raised
        store.write_result({**record, "status": "failed", "reason": "ValueError: x"})
    plugin_module.write_text(PLUGIN.replace("1.0 * logits", "0.0 * logits"))  # the fix
    code, _, err = run(capsys, grid, out)
    assert "stale" not in err and "2 of them failed: rerun with --retry-failed" in err
    assert main(["status", str(out), "--no-slurm"]) == 0
    assert "failed: 2" in capsys.readouterr().out
    from noisybench.config import load_grid
    from noisybench.orchestration.fingerprint import fingerprints
    from noisybench.plan import expand_grid

    runs = expand_grid(load_grid(grid))
    pending = classify(runs, store, retry_failed=True, expected=fingerprints(runs))
    assert pending.todo == runs and pending.stale == []


def _hold(out: Path, run_id: str) -> None:
    """A live claim of another process on this host (this test's parent) on ``run_id``."""
    import os
    import socket

    from noisybench.store.claims import CLAIMS, process_start

    parent = os.getppid()
    (out / CLAIMS).mkdir(exist_ok=True)
    (out / CLAIMS / f"{run_id}.0").write_text(json.dumps(
        {"host": socket.gethostname(), "pid": parent, "start": process_start(parent), "job": None}))


@pytest.mark.parametrize("how", ["force", "rerun-stale", "corrupt"])
def test_a_run_another_live_driver_trains_is_never_moved(tmp_path: Path, plugin_module: Path, how: str,
                                                        capsys: pytest.CaptureFixture) -> None:
    """--force, --rerun-stale and the retiring of corrupt runs take the run's claim first: a run that a live
    process holds is skipped as busy, its folder left where it is."""
    grid, out = tmp_path / "g.toml", tmp_path / "out"
    grid.write_text(grid_text(["edit-me"]))
    assert run(capsys, grid, out)[0] == 0
    store = ResultStore(out)
    busy, free = sorted(store.run_ids())
    before = (store.run_dir(busy) / "result.json").read_bytes()
    flags: tuple[str, ...] = ()
    if how == "force":
        flags = ("--force",)
    elif how == "rerun-stale":
        plugin_module.write_text(PLUGIN.replace("1.0 * logits", "0.0 * logits"))
        flags = ("--rerun-stale",)
    else:
        for run_id in (busy, free):
            (store.run_dir(run_id) / "result.json").write_text("{truncated")
        before = (store.run_dir(busy) / "result.json").read_bytes()
    _hold(out, busy)
    code, _, err = run(capsys, grid, out, *flags)
    assert code == 0, err
    assert f"{busy}" in err and "is being trained by" in err and "not moved, skipped" in err
    assert (store.run_dir(busy) / "result.json").read_bytes() == before  # untouched
    assert [p.name.split(".")[0] for p in (out / "retired").iterdir()] == [free]  # only the free run moved
    assert store.stored(free).state == "done"


def test_a_run_this_user_cannot_read_is_named_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A teammate's run whose files are not readable by this user: `run` neither retires nor redoes it,
    `status` and `report` call it unreadable by this user, never corrupt."""
    from tests.test_store import _deny

    grid, out = tmp_path / "g.toml", tmp_path / "out"
    grid.write_text(grid_text(["ce"]))
    assert run(capsys, grid, out)[0] == 0
    _deny(monkeypatch, "result.json")
    code, _, err = run(capsys, grid, out)
    assert code == 0 and "2 run(s) left alone, their records unreadable by this user" in err
    assert "corrupt" not in err and not (out / "retired").exists() and "0 to run" in err
    assert main(["status", str(out), "--no-slurm"]) == 0
    shown = capsys.readouterr().out
    assert "unreadable: 2" in shown and "unreadable by this user" in shown and "corrupt" not in shown
    monkeypatch.undo()
    hidden = sorted(ResultStore(out).run_ids())[0]
    _deny(monkeypatch, "result.json", within=hidden)
    assert main(["report", str(out)]) == 0
    warning = next(line for line in capsys.readouterr().out.splitlines() if hidden in line)
    assert "unreadable by this user" in warning and "corrupt:" not in warning
