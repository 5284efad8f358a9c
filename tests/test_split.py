"""The noisy validation split: a recipe key a paper recipe may set to 0 (train on everything), reports that fall
back to a metric the runs record when there is none, and splits that would be empty refused before training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from noisybench.cli import main
from noisybench.config import parse_grid
from noisybench.errors import ConfigError
from noisybench.facts import CIFAR_10
from noisybench.method import RECIPE_KEYS, recipe
from noisybench.methods.ce import CE
from noisybench.plan import expand_grid
from noisybench.store.results import load_results
from tests.conftest import TINY_GRID

NO_VALIDATION = TINY_GRID.replace("epochs = 3", "epochs = 3\nval_fraction = 0")


class WholeTrainingSet(CE):
    """A method whose paper trains on the whole training set (no validation split)."""

    paper_recipes = {CIFAR_10: {**recipe(arch="resnet34", epochs=120, lr=0.02), **recipe(val_fraction=0.0)}}


def _plan(protocol: str) -> list:
    return expand_grid(parse_grid({"grid": {"datasets": ["cifar10"], "methods": ["whole"], "noise": ["sym:0.5"],
                                            "seeds": [1]}, "train": {"protocol": protocol}}))


def test_a_paper_recipe_sets_val_fraction_and_plan_shows_where_it_comes_from(plugin, tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture) -> None:
    assert "val_fraction" in RECIPE_KEYS
    plugin("whole", WholeTrainingSet)
    paper, shared = _plan("paper")[0], _plan("shared")[0]
    assert paper.train.val_fraction == 0.0 and paper.train_sources["val_fraction"] == "paper"
    assert shared.train.val_fraction == 0.1  # the shared protocol keeps the 10 % noisy split
    grid = tmp_path / "g.toml"
    grid.write_text('[grid]\ndatasets = ["cifar10"]\nmethods = ["whole"]\nnoise = ["sym:0.5"]\nseeds = [1]\n'
                    '[train]\nprotocol = "paper"\n')
    assert main(["plan", str(grid), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)["configurations"][0]["recipe"]["val_fraction"]
    assert (shown["value"], shown["source"]) == (0.0, "paper")
    assert main(["plan", str(grid)]) == 0
    assert any(line.split()[:4] == ["recipe", "val_fraction", "0", "paper"]
               for line in capsys.readouterr().out.splitlines())


def test_without_a_validation_split_run_and_report_fall_back_to_the_last_epoch(
        grid_file, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["run", str(grid_file(NO_VALIDATION)), "--out", str(out), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    frame = load_results(out)
    assert set(frame["status"]) == {"done"} and frame["val_selected"].isna().all()
    assert not frame["last"].isna().any()
    fallback = [line for line in captured.out.splitlines() if "no validation split" in line]
    assert len(fallback) == 1 and "last" in fallback[0], captured.out
    assert "(n=2)" in captured.out and "--metric val" not in captured.err
    assert captured.err.count("(no validation split)") == 4  # the progress lines show last
    assert main(["report", str(out)]) == 0
    assert sum("no validation split" in line for line in capsys.readouterr().out.splitlines()) == 1
    assert main(["report", str(out), "--metric", "mean-last"]) == 0  # a metric the runs record: no fallback
    assert "no validation split" not in capsys.readouterr().out
    history = json.loads(next(out.rglob("history.json")).read_text())
    assert all(math.isnan(row["val_acc"]) for row in history)


def test_a_metric_no_run_records_names_one_they_do(grid_file, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["run", str(grid_file()), "--out", str(out), "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["report", str(out), "--metric", "clean-val"]) == 2
    err = capsys.readouterr().err
    assert "no selected run records 'clean_val_selected'" in err and "--metric val" in err


def test_an_empty_split_is_refused_when_the_run_starts_before_any_epoch(tmp_path: Path) -> None:
    """A dataset that cannot tell its class sizes without loading is checked when the run prepares its data."""
    from dataclasses import replace

    from noisybench.data.prepare import prepare_data
    from noisybench.orchestration.runner import execute_run
    from noisybench.store import ResultStore

    with pytest.raises(ConfigError, match=r"blobs: val_fraction = 0\.1 holds out no sample: 12 training samples"):
        prepare_data("blobs", {"n_samples": 16, "classes": 4}, "sym:0.2", 1, 0.1)
    with pytest.raises(ConfigError, match=r"holds out all 12 training samples"):
        prepare_data("blobs", {"n_samples": 16, "classes": 4}, "sym:0.2", 1, 0.95)
    run = expand_grid(parse_grid({"grid": {"datasets": ["blobs"], "methods": ["ce"], "noise": ["sym:0.2"],
                                           "seeds": [1]}, "train": {"epochs": 2}}))[0]
    tiny = replace(run, dataset=replace(run.dataset, params={"n_samples": 16, "classes": 4}))
    record = execute_run(tiny, tmp_path)
    assert record["status"] == "failed" and record["reason"].startswith("ConfigError: blobs: val_fraction = 0.1")
    assert "\n" not in record["reason"] and ResultStore(tmp_path).history(tiny.run_id) == []
