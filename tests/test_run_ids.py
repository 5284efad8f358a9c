"""Run ids stay put when the recipe gains fields: fields added after the first schema stay out of the id at their
neutral value (noisybench.config.ID_NEUTRAL_TRAIN_KEYS), and change it at any other value."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from noisybench.config import ID_NEUTRAL_TRAIN_KEYS, RunConfig, TrainConfig, load_grid
from noisybench.errors import ConfigError
from noisybench.plan import expand_grid
from noisybench.registry import METHODS, list_methods

ROOT = Path(__file__).resolve().parents[1]
#: TrainConfig's fields when run ids were first stored (schema 1).
FIRST_SCHEMA = {"protocol", "arch", "arch_kwargs", "epochs", "batch_size", "optimizer", "lr", "momentum", "nesterov",
                "weight_decay", "schedule", "milestones", "gamma", "augment", "val_fraction", "mean_last_k",
                "eval_batch_size", "device", "amp", "channels_last", "compile", "deterministic", "threads",
                "num_workers"}
#: A value other than the neutral one for every field added since (each valid on the quick grid's recipes).
NON_NEUTRAL = {"eta_min": 1e-4, "restart_every": 5, "adam_beta1_tail": 0.1, "lr_decay_per_step": 1e-4,
               "grad_clip_norm": 5.0, "weight_decay_by_module": {"kernels": 1e-3}, "normalize": False,
               "phases": [{"epochs": 40}]}


def test_the_first_quick_boards_run_ids_are_kept_by_the_cpu_board() -> None:
    # tests/quick_run_ids.json: the 120 run ids of the first quick board (CE, GCE, ELR, ALR, DivideMix on digits and
    # MNIST-1D) as stored before any field was added; benchmarks/cpu.toml holds those runs and every other method's
    stored = json.loads((ROOT / "tests" / "quick_run_ids.json").read_text())
    runs = expand_grid(load_grid(ROOT / "benchmarks" / "cpu.toml"))
    first = {r.run_id: r.label() for r in runs if r.method in {"ce", "gce", "elr", "alr", "dividemix"}}
    assert first == stored
    built_in = {name for name in list_methods() if METHODS.origin(name).module.startswith("noisybench.methods.")}
    assert {r.method for r in runs} == built_in  # every method of the suite


def test_every_field_added_after_the_first_schema_declares_its_neutral_value() -> None:
    added = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name not in FIRST_SCHEMA}
    assert set(added) == set(ID_NEUTRAL_TRAIN_KEYS) == set(NON_NEUTRAL)
    defaults = TrainConfig()
    assert all(getattr(defaults, name) == ID_NEUTRAL_TRAIN_KEYS[name] for name in added)


@pytest.mark.parametrize("key", sorted(NON_NEUTRAL))
def test_a_non_neutral_value_changes_the_run_id_and_survives_storage(key: str) -> None:
    run = expand_grid(load_grid(ROOT / "benchmarks" / "cpu.toml"))[0]
    value = NON_NEUTRAL[key]
    extra = {"schedule": "cosine-restarts"} if key == "restart_every" else {}
    if key == "adam_beta1_tail":
        extra = {"optimizer": "adam", "schedule": "linear-tail", "milestones": [5]}
    if key != "restart_every":  # the other keys change the id on their own
        extra_only = dataclasses.replace(run, train=dataclasses.replace(run.train, **extra))
        with_key = dataclasses.replace(extra_only, train=dataclasses.replace(extra_only.train, **{key: value}))
        assert with_key.run_id != extra_only.run_id
    changed = dataclasses.replace(run, train=dataclasses.replace(run.train, **extra, **{key: value}))
    changed.train.validate()
    assert changed.run_id != run.run_id
    assert RunConfig.from_dict(json.loads(json.dumps(changed.to_dict()))).run_id == changed.run_id


def test_zero_written_as_an_integer_is_still_neutral() -> None:
    run = expand_grid(load_grid(ROOT / "benchmarks" / "cpu.toml"))[0]
    assert dataclasses.replace(run, train=dataclasses.replace(run.train, eta_min=0, lr_decay_per_step=0)).run_id \
        == run.run_id


@pytest.mark.parametrize(("line", "match"), [
    ("grad_clip_norm = -1.0", "grad_clip_norm must be > 0"),
    ("weight_decay_by_module = 0.1", "weight_decay_by_module must be a table"),
    ("normalize = \"no\"", "normalize must be true or false"),
    ("schedule = \"linear-tail\"", "linear-tail.*milestones"),
    ("eta_min = \"small\"", "eta_min must be a finite number"),
    ("phases = [{epochs = 40, arch = \"mlp\"}]", "phases\\[0\\]: arch cannot change between phases"),
])
def test_bad_new_recipe_values_are_refused_naming_the_grid_file_and_key(tmp_path: Path, line: str,
                                                                       match: str) -> None:
    grid = tmp_path / "bad.toml"
    grid.write_text(f'[grid]\ndatasets = ["digits"]\nmethods = ["ce"]\nnoise = ["sym:0.2"]\nseeds = [1]\n'
                    f"[train]\n{line}\n")
    with pytest.raises(ConfigError, match=f"{grid}: \\[train\\].*{match}"):
        expand_grid(load_grid(grid))
