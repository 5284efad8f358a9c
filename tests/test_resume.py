"""Results that stay true: stale runs after an edited plugin or a replaced label file, corrupt runs moved
aside and redone, forced reruns, and a closing table of exactly the grid's current runs (noisybench.resume)."""

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
    their fingerprints are translated through the migration table (``noisybench/fingerprint_legacy.json``).

    When this test fails because the core or a plugin the fixture uses changed for real: if the change is
    shown to move no number (the quick grid bit-identical), regenerate the table
    (``python -m noisybench.fingerprint_legacy migrate --legacy-commit 70a96d9``); if it moves numbers, the
    fixture's runs are rightly stale: change the expectations below to ``stale: 4`` (and say so in the commit).
    """
    from noisybench import fingerprint_legacy

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
