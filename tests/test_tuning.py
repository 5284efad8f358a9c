"""[tune] planning: trial points (Sobol, stable across processes), effective budgets, run ids, guard rails."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from noisybench.config import load_grid
from noisybench.errors import ConfigError
from noisybench.plan import expand_grid
from noisybench.search_space import Choice, IntUniform, LogUniform, Uniform
from noisybench.tuning.trials import (
    DIGITS,
    check_space,
    plan_tuning,
    render_tuned_plan,
    sobol_seed,
    trial_points,
    value_at,
)
from tests.conftest import TINY_GRID

TUNE = "[tune]\nbudget = 4\nseeds = [11, 12]\n"
TUNED = TINY_GRID.replace('methods = ["ce", "gce"]', 'methods = ["ce", "gce", "elr"]') + TUNE
REPO = Path(__file__).resolve().parents[1]


def _plan(grid_file, body: str = TUNED):
    return plan_tuning(load_grid(grid_file(body)))


def test_trial_zero_is_the_default_and_the_rest_are_distinct_sobol_points() -> None:
    space = {"a": Uniform(0.0, 1.0), "b": LogUniform(1e-3, 1e-1)}
    default = {"a": 0.5, "b": 0.01}
    points = trial_points(space, default, 8, seed=7)
    assert points[0] == default and len(points) == 8
    assert len({json.dumps(p, sort_keys=True) for p in points}) == 8
    for p in points[1:]:
        assert 0.0 <= p["a"] <= 1.0 and 1e-3 <= p["b"] <= 1e-1
        assert all(float(f"{v:.{DIGITS}g}") == v for v in p.values())  # a plain grid can write them exactly
    assert trial_points(space, default, 8, seed=7) == points
    assert trial_points(space, default, 8, seed=8)[1:] != points[1:]
    assert trial_points(space, default, 4, seed=7) == points[:4]  # a smaller budget is a prefix


def test_small_spaces_run_fewer_trials_and_are_enumerated_whole() -> None:
    space = {"c": Choice((0.0, 25.0, 50.0))}
    assert trial_points(space, {"c": 25.0}, 8, seed=1) == [{"c": 25.0}, {"c": 0.0}, {"c": 50.0}]
    assert trial_points(space, {"c": 10.0}, 8, seed=1) == [{"c": 10.0}, {"c": 0.0}, {"c": 25.0}, {"c": 50.0}]
    ints = trial_points({"w": IntUniform(1, 2)}, {"w": 1}, 6, seed=1)
    assert ints == [{"w": 1}, {"w": 2}]
    big = trial_points({"w": IntUniform(1, 20)}, {"w": 5}, 6, seed=3)  # larger than the budget: Sobol, deduplicated
    assert len(big) == 6 and len({p["w"] for p in big}) == 6
    assert trial_points({}, {}, 6, seed=1) == [{}]


def test_integer_choices_of_a_float_hyperparameter_become_floats() -> None:
    assert value_at(Choice((0, 25)), 0.9, like=25.0) == 25.0 and isinstance(value_at(Choice((0, 25)), 0.9, 25.0), float)
    assert value_at(LogUniform(0.3, 10.0), 1.0) == 10.0 and value_at(Uniform(0.7, 0.99), 0.0) == 0.7


def test_plan_lists_every_trial_and_ce_has_an_effective_budget_of_one(grid_file) -> None:
    plan = _plan(grid_file)
    budgets = {c.cell.method: c.effective_budget for c in plan.cells}
    assert budgets == {"ce": 1, "gce": 4, "elr": 4}
    trials = plan.trial_runs()
    assert len(trials) == (1 + 4 + 4) * 2 and {r.seed for r in trials} == {11, 12}
    assert len({r.run_id for r in trials}) == len(trials)
    gce = [c for c in plan.cells if c.cell.method == "gce"][0]
    assert gce.trials[0].hparams["q"] == 0.7 and gce.trials[0].sources["q"] == "paper-default"
    assert all(t.sources["q"] == "tuned" for t in gce.trials[1:])
    assert sorted(gce.space) == ["q"] and [t.number for t in gce.trials] == [0, 1, 2, 3]
    data = json.loads(render_tuned_plan(plan, "json"))
    cells = {c["method"]: c for c in data["tuning"]["cells"]}
    assert [t["values"]["q"] for t in cells["gce"]["trials"]] == [t.values["q"] for t in gce.trials]
    assert data["total"] == {"num_runs": 18 + 6, "tuning_runs": 18, "evaluation_runs": 6, "num_epochs": 24 * 3}
    text = render_tuned_plan(plan)
    assert "effective budget 4" in text and "search space: empty (trial 0 only; effective budget 1)" in text


def test_the_same_grid_plans_the_same_trials_twice(grid_file) -> None:
    assert render_tuned_plan(_plan(grid_file), "json") == render_tuned_plan(_plan(grid_file), "json")


PLAN_SCRIPT = """
import sys
from noisybench.config import load_grid
from noisybench.tuning.trials import plan_tuning, render_tuned_plan, sobol_seed, trial_points
from noisybench.search_space import Uniform
sys.stdout.write(str(sobol_seed("g", "gce", "blobs", "sym:0.2")) + "\\n")
sys.stdout.write(repr(trial_points({"x": Uniform(0.0, 1.0)}, {"x": 0.5}, 5, 3)) + "\\n")
sys.stdout.write(render_tuned_plan(plan_tuning(load_grid(sys.argv[1])), "json"))
"""


@pytest.mark.slow
def test_trials_do_not_depend_on_the_process(grid_file) -> None:
    """Other hash seeds (``hash()`` of strings changes with PYTHONHASHSEED), other processes: the same trials."""
    path = grid_file(TUNED)
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", PLAN_SCRIPT, str(path)], capture_output=True, text=True,
                              env=env, cwd=REPO, timeout=300)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    here = (f"{sobol_seed('g', 'gce', 'blobs', 'sym:0.2')}\n"
            f"{trial_points({'x': Uniform(0.0, 1.0)}, {'x': 0.5}, 5, 3)!r}\n"
            f"{render_tuned_plan(plan_tuning(load_grid(path)), 'json')}")
    assert outputs[0] == outputs[1] == here


def test_sobol_seed_is_a_stable_hash_of_the_setting() -> None:
    assert sobol_seed("g", "gce", "blobs", "sym:0.2") == sobol_seed("g", "gce", "blobs", "sym:0.2")
    assert len({sobol_seed("g", m, "blobs", "sym:0.2") for m in ("ce", "gce", "elr")}) == 3
    assert 0 <= sobol_seed("quick", "alr", "digits", "asym:0.4") < 2**63


def test_trial_zero_on_the_grid_seeds_is_the_plain_grid_run(grid_file) -> None:
    """Tuning metadata never enters a run id: evaluating trial 0 plans exactly the untuned grid's runs."""
    plan = _plan(grid_file)
    evaluation = plan.evaluation_runs({c.key: 0 for c in plan.cells})
    plain = expand_grid(load_grid(grid_file(TUNED.replace(TUNE, ""))))
    assert [r.run_id for r in evaluation] == [r.run_id for r in plain]
    assert all(r.tuning["stage"] == "eval" and r.tuning["trial"] == 0 for r in evaluation)
    assert all(not r.tuning for r in plain)


def test_a_chosen_trial_has_the_run_ids_of_a_plain_grid_with_its_values(grid_file) -> None:
    plan = _plan(grid_file)
    elr = [c for c in plan.cells if c.cell.method == "elr"][0]
    chosen = elr.trials[2]
    runs = plan.evaluation_runs({elr.key: 2})
    assert all(r.hparams["beta"] == chosen.values["beta"] and r.hparam_sources["lam"] == "tuned" for r in runs)
    fixed = "".join(f"{k} = {v!r}\n" for k, v in chosen.values.items())
    plain = expand_grid(load_grid(grid_file(TUNED.replace(TUNE, "") + f"[methods.elr]\n{fixed}")))
    assert [r.run_id for r in runs] == [r.run_id for r in plain if r.method == "elr"]


def test_recipe_keys_are_tuned_for_every_method_around_the_recipe(grid_file) -> None:
    body = TUNED.replace(TUNE, '[tune]\nbudget = 3\nseeds = [11]\nrecipe = ["lr", "weight_decay"]\n')
    plan = _plan(grid_file, body)
    ce = [c for c in plan.cells if c.cell.method == "ce"][0]
    assert ce.effective_budget == 3 and ce.space["lr"] == LogUniform(0.05 / 3, 0.05 * 3, "suite")
    assert ce.space["weight_decay"] == LogUniform(5e-4 / 10, 5e-4 * 10, "suite")
    trial = ce.trials[1]
    assert trial.recipe.train.lr == trial.values["lr"] and trial.recipe.sources["lr"] == "tuned"
    run = plan.evaluation_runs({ce.key: 1})[0]
    plain = expand_grid(load_grid(grid_file(TUNED.replace(TUNE, "").replace(
        "epochs = 3", f"epochs = 3\nlr = {trial.values['lr']!r}\nweight_decay = {trial.values['weight_decay']!r}"))))
    assert run.run_id == [r for r in plain if r.method == "ce" and r.seed == run.seed][0].run_id


def test_a_space_table_replaces_the_declared_space(grid_file) -> None:
    body = TUNED + "[tune.space.gce]\nq = [0.3, 0.7]\n[tune.space.elr]\n"
    plan = _plan(grid_file, body)
    by = {c.cell.method: c for c in plan.cells}
    assert [t.values for t in by["gce"].trials] == [{"q": 0.7}, {"q": 0.3}]
    assert by["gce"].space["q"].source == "user" and by["elr"].effective_budget == 1


def test_keys_fixed_in_methods_leave_the_declared_space(grid_file) -> None:
    plan = _plan(grid_file, TUNED + "[methods.elr]\nbeta = 0.9\n")
    elr = [c for c in plan.cells if c.cell.method == "elr"][0]
    assert sorted(elr.space) == ["lam"] and all(t.hparams["beta"] == 0.9 for t in elr.trials)


@pytest.mark.parametrize(("extra", "match"), [
    ("[tune.space.gce]\nqq = [0.3, 0.7]\n", r"\[tune.space.gce\] qq: gce has no hyperparameter 'qq'"),
    ("[methods.gce]\nq = 0.5\n[tune.space.gce]\nq = [0.3, 0.7]\n", "both fixed in .methods.gce. and tuned"),
    ("[tune.space.gce]\nlr = [0.1, 0.2]\n", r"\[tune.space.gce\] lr is a recipe key"),
    ("[tune.space.gce]\nq = { low = 0.5, high = 1.5 }\n", r"\[tune.space.gce\]: the point q = 1.5 is refused"),
    ("[tune.space.gce]\nq = { low = 0.5, high = inf }\n", r"\[tune.space.gce\] q: .*bounds must be finite"),
    ("[tune.space.gce]\nq = [0.5]\n", r"\[tune.space.gce\] q: list at least two values"),
    ("[tune.space.gce]\nq = [0.5, 0.5]\n", r"\[tune.space.gce\] q lists the same entry twice"),
    ("[tune.space.dividemix]\nT = [0.5, 0.7]\n", r"\[tune.space.dividemix\] tunes a method the grid does not run"),
])
def test_bad_spaces_are_refused_naming_the_file_and_key(grid_file, extra: str, match: str) -> None:
    path = grid_file(TUNED + extra)
    with pytest.raises(ConfigError, match=match) as info:
        plan_tuning(load_grid(path))
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize(("tune", "match"), [
    ("budget = 0\nseeds = [11]", r"\[tune\] budget must be an integer >= 1"),
    ("budget = 2.5\nseeds = [11]", r"\[tune\] budget must be an integer >= 1"),
    ("budget = 4\nseeds = [2, 11]", r"\[tune\] seeds 2 are also \[grid\] seeds"),
    ("budget = 4\nseeds = []", r"\[tune\] seeds must be a non-empty list"),
    ("budget = 4\nseeds = [11, 11]", r"\[tune\] seeds lists the same entry twice"),
    ("budget = 4\nseeds = [-1]", r"\[tune\] seeds must be in 0 .. 2\*\*63 - 1"),
    ("budget = 4\nseeds = [11]\nrecipe = [\"lrr\"]", r"\[tune\] recipe: 'lrr' is not a recipe key"),
    ("budget = 4\nseeds = [11]\nrecipe = [\"epochs\"]", r"\[tune\] recipe: 'epochs' cannot be tuned"),
    ("budget = 4\nseeds = [11]\nbudgett = 3", r"unknown key 'budgett' in \[tune\]"),
])
def test_bad_tune_tables_are_refused(grid_file, tune: str, match: str) -> None:
    path = grid_file(TUNED.replace(TUNE, f"[tune]\n{tune}\n"))
    with pytest.raises(ConfigError, match=match) as info:
        load_grid(path)
    assert str(info.value).startswith(str(path))


def test_a_grid_with_nothing_to_tune_is_refused(grid_file) -> None:
    body = TINY_GRID.replace('methods = ["ce", "gce"]', 'methods = ["ce"]') + TUNE
    with pytest.raises(ConfigError, match=r"no method of the grid has anything to tune \(ce: empty"):
        _plan(grid_file, body)
    assert _plan(grid_file, body.replace("seeds = [11, 12]", 'seeds = [11, 12]\nrecipe = ["lr"]')).cells[0].space


def test_tuning_needs_a_validation_split(grid_file) -> None:
    with pytest.raises(ConfigError, match=r"\[tune\] selects on noisy validation, but ce on blobs trains with "
                                          r"val_fraction = 0 \(user\)"):
        _plan(grid_file, TUNED.replace("epochs = 3", "epochs = 3\nval_fraction = 0.0"))


def test_weight_decay_zero_cannot_be_tuned_around(grid_file) -> None:
    body = TUNED.replace("epochs = 3", "epochs = 3\nweight_decay = 0.0").replace(
        "seeds = [11, 12]", 'seeds = [11, 12]\nrecipe = ["weight_decay"]')
    with pytest.raises(ConfigError, match="weight_decay is 0 here"):
        _plan(grid_file, body)


def test_sweep_tables_are_refused_with_their_tune_equivalent(grid_file) -> None:
    path = grid_file(TINY_GRID + "[sweep.gce]\nq = [0.3, 0.7]\n")
    with pytest.raises(ConfigError, match=r"\[sweep\] was replaced by \[tune\].*\[tune.space.gce\] q = \[0.3, 0.7\]"):
        load_grid(path)


@pytest.mark.parametrize("method", ["gce", "elr", "alr", "dividemix", "ce"])
def test_built_in_spaces_resolve_everywhere(method: str) -> None:
    from noisybench.facts import NoiseKind, Setting
    from noisybench.registry import METHODS

    cls = METHODS.get(method)
    for epochs in (1, 2, 40, 300):
        for kind in (NoiseKind.SYMMETRIC, NoiseKind.CLASS_CONDITIONAL):
            setting = Setting("probe", "sym", 0.4, 10, epochs, noise_kind=kind, class_map="dataset")
            assert check_space(cls, setting) == []
    assert (cls.search_space(Setting("probe", "sym", 0.4, 10, 40)) == {}) == (method == "ce")


def test_gce_tunes_k_only_when_truncated_and_alr_follows_its_entropy_variant() -> None:
    from noisybench.facts import Setting
    from noisybench.registry import METHODS

    setting = Setting("probe", "sym", 0.4, 10, 40)
    assert sorted(METHODS.get("gce").search_space(setting, {"truncated": True})) == ["k", "q"]
    assert sorted(METHODS.get("gce").search_space(setting, {"truncated": False})) == ["q"]
    alr = METHODS.get("alr")
    assert "lambda_h" in alr.search_space(setting, {"entropy_on": "pred"})
    assert "sharpen_T" in alr.search_space(setting, {"entropy_on": "targets"})
    assert alr.search_space(setting)["warmup_end"] == IntUniform(4, 16, "suite")


def test_every_space_dimension_has_a_source_and_finite_bounds() -> None:
    from noisybench.facts import Setting
    from noisybench.registry import METHODS
    from noisybench.search_space import SPACE_SOURCES

    for name in METHODS.list():
        for dim in METHODS.get(name).search_space(Setting("probe", "sym", 0.4, 10, 40)).values():
            assert dim.source in SPACE_SOURCES
            if isinstance(dim, (Uniform, LogUniform)):
                assert math.isfinite(dim.low) and math.isfinite(dim.high)
