"""Protocols and recipes: what `noisybench plan` shows, and that it needs no data files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from noisybench.cli import main
from noisybench.config import parse_grid
from noisybench.errors import ConfigError
from noisybench.plan import expand_grid

GRID = """
name = "protocols"
[grid]
datasets = ["cifar10"]
methods = ["dividemix", "elr", "gce"]
noise = ["sym:0.5"]
seeds = [1, 2]
[train]
protocol = "{protocol}"
[data]
root = "{root}"
"""
RECIPE = ("arch", "epochs", "optimizer", "lr", "momentum", "weight_decay", "schedule", "milestones", "gamma",
          "batch_size", "augment")


def _plan(tmp_path: Path, capsys: pytest.CaptureFixture, protocol: str, fmt: str = "json") -> dict:
    grid = tmp_path / f"{protocol}.toml"
    grid.write_text(GRID.format(protocol=protocol, root=tmp_path / "no-data-here"))
    assert main(["plan", str(grid), "--format", fmt]) == 0
    out = capsys.readouterr().out
    return json.loads(out) if fmt == "json" else {"text": out}


def test_paper_protocol_gives_each_method_its_own_recipe_without_data(tmp_path: Path, capsys) -> None:
    plan = _plan(tmp_path, capsys, "paper")
    by = {c["method"]: c for c in plan["configurations"]}
    dm, elr, gce = by["dividemix"], by["elr"], by["gce"]
    value = lambda c, k: c["recipe"][k]["value"]  # noqa: E731
    assert (value(dm, "arch"), value(dm, "epochs"), value(dm, "milestones"), value(dm, "weight_decay")) == (
        "preact_resnet18", 300, [150], 5e-4)
    assert (dm["hparams"]["warmup"]["value"], dm["hparams"]["rampup"]["value"]) == (10, 16)
    assert {dm["hparams"][k]["source"] for k in ("warmup", "rampup")} == {"paper"}
    assert (value(elr, "arch"), value(elr, "epochs"), value(elr, "milestones"), value(elr, "gamma")) == (
        "resnet34", 120, [40, 80], 0.01)
    assert (value(gce, "lr"), value(gce, "weight_decay"), value(gce, "gamma")) == (0.01, 1e-4, 0.1)
    for config in by.values():
        assert config["protocol"] == "paper" and config["seeds"] == [1, 2] and not config["note"]
        assert {config["recipe"][k]["source"] for k in RECIPE} == {"paper"}
    assert plan["total"] == {"num_runs": 6, "num_epochs": 2 * (300 + 120 + 120)}


def test_shared_protocol_gives_every_method_one_recipe(tmp_path: Path, capsys) -> None:
    plan = _plan(tmp_path, capsys, "shared")
    recipes = {json.dumps({k: c["recipe"][k]["value"] for k in RECIPE}) for c in plan["configurations"]}
    assert len(recipes) == 1
    recipe = json.loads(recipes.pop())
    assert (recipe["arch"], recipe["epochs"], recipe["lr"]) == ("resnet34", 120, 0.02)
    dm = next(c for c in plan["configurations"] if c["method"] == "dividemix")
    assert (dm["hparams"]["warmup"]["value"], dm["hparams"]["warmup"]["source"]) == (4, "suite")  # scaled 10/300


def test_table_format_names_values_and_provenance(tmp_path: Path, capsys) -> None:
    text = _plan(tmp_path, capsys, "paper", fmt="table")["text"]
    assert "== cifar10 | sym:0.5 | dividemix | protocol paper | seeds 1, 2 (2 runs x 300 epochs) ==" in text
    assert "preact_resnet18" in text and "6 runs, 1080 epochs in total" in text


def test_paper_falls_back_to_shared_where_no_recipe_is_published() -> None:
    grid = parse_grid({"grid": {"datasets": ["digits"], "methods": ["alr", "gce"], "noise": ["sym:0.2"],
                                "seeds": [1]}, "train": {"protocol": "paper"}})
    paper = expand_grid(grid)
    shared = expand_grid(parse_grid({"grid": {"datasets": ["digits"], "methods": ["alr", "gce"],
                                              "noise": ["sym:0.2"], "seeds": [1]}}))
    for p, s in zip(paper, shared):
        assert p.train.protocol == "paper" and s.train.protocol == "shared"
        assert {k: v for k, v in p.train.to_dict().items() if k != "protocol"} == {
            k: v for k, v in s.train.to_dict().items() if k != "protocol"}
        assert set(p.train_sources.values()) == {"suite"} and p.hparams == s.hparams
        assert p.run_id != s.run_id  # the protocol is part of the run id


def test_user_epochs_under_paper_scale_epoch_hparams_as_suite() -> None:
    grid = parse_grid({"grid": {"datasets": ["cifar10"], "methods": ["dividemix"], "noise": ["sym:0.5"],
                                "seeds": [1]}, "train": {"protocol": "paper", "epochs": 30, "milestones": [15]}})
    run = expand_grid(grid)[0]
    assert run.train.arch == "preact_resnet18" and run.train_sources["epochs"] == "user"
    assert (run.hparams["warmup"], run.hparam_sources["warmup"]) == (1, "suite")


def test_shorter_epochs_of_a_step_recipe_need_milestones_inside_the_run() -> None:
    grid = parse_grid({"grid": {"datasets": ["cifar10"], "methods": ["dividemix"], "noise": ["sym:0.5"],
                                "seeds": [1]}, "train": {"protocol": "paper", "epochs": 30}})
    with pytest.raises(ConfigError, match=r"\[train\] milestones \[150\] must be increasing epochs in 1 \.\. 29.*"
                                          r"set \[train\] milestones for a 30-epoch run"):
        expand_grid(grid)


@pytest.mark.parametrize(("train", "match"), [
    ({"profile": "paper"}, 'profile was replaced by protocol; write protocol = "shared"'),
    ({"profile": "fast"}, 'write protocol = "fast"'),
    ({"protocol": "papers"}, "protocol 'papers' is not available.*'paper'"),
])
def test_old_profile_names_and_unknown_protocols_fail_naming_the_replacement(train: dict, match: str) -> None:
    grid = parse_grid({"grid": {"datasets": ["cifar10"], "methods": ["ce"], "noise": ["sym:0.5"], "seeds": [1]},
                       "train": train})
    with pytest.raises(ConfigError, match=match):
        expand_grid(grid)


def _noise_grid(tmp_path: Path, noise: list[str]) -> Path:
    grid = tmp_path / "noise.toml"
    grid.write_text(f'name = "n"\n[grid]\ndatasets = ["blobs"]\nmethods = ["ce"]\nnoise = {json.dumps(noise)}\n'
                    'seeds = [1]\n[train]\nepochs = 1\n')
    return grid


@pytest.mark.parametrize(("noise", "match"), [
    (["none:0.5"], r"noise\.toml: \[grid\] noise: noise 'none:0.5': family 'none' takes no argument; write 'none'"),
    (["sym:0", "sym:-0"], r"noise\.toml: \[grid\] noise lists the same entry twice \('sym:0' and 'sym:-0'"),
    (["sym:1.0"], r"noise\.toml: \[grid\] noise: noise 'sym:1.0': rate 1.0 is outside \[0, 1\)"),
])
def test_bad_noise_specs_are_refused_up_front_naming_file_and_key(tmp_path: Path, capsys, noise: list[str],
                                                                  match: str) -> None:
    grid = _noise_grid(tmp_path, noise)
    assert main(["plan", str(grid)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err


def test_a_planned_rate_runs_as_written(tmp_path: Path) -> None:
    from noisybench.config import load_grid
    from noisybench.data.prepare import prepare_data

    runs = expand_grid(load_grid(_noise_grid(tmp_path, ["sym:0.99999999", "sym:0.1234567"])))
    assert [r.noise for r in runs] == ["sym:0.99999999", "sym:0.1234567"]
    for run in runs:  # what the worker does with the planned text: the exact rate, no refusal
        _, data = prepare_data(run.dataset.name, run.dataset.params, run.noise, run.seed)
        assert data.noise.nominal_rate == float(run.noise.partition(":")[2]) and data.noise.spec == run.noise
