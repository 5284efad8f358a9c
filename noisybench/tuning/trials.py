"""Equal tuning budgets: a grid's ``[tune]`` stage, then its evaluation stage.

Every method x dataset x noise setting of a grid with a ``[tune]`` table (:mod:`noisybench.tuning.config`) gets
the same number of trials, ``budget``:

- trial 0 is the method's resolved default for the setting (with the grid's ``[methods.<name>]`` values);
- trials 1 to budget - 1 are points of a scrambled Sobol sequence (:mod:`scipy.stats.qmc`) over the setting's
  search space (the method's :meth:`~noisybench.method.Method.search_space`, or the grid's ``[tune.space]``
  table, plus the ``[tune] recipe`` keys), seeded by a SHA-256 of (grid name, method, dataset, noise): the same
  trials on every machine and in every process, known before anything runs (``noisybench plan`` lists them).
  Dimensions are taken in name order and continuous values are rounded to 4 significant digits, so a plain
  grid can write a chosen value exactly;
- a point equal to an earlier trial is skipped, and a space with no more points (the default included) than
  the budget is enumerated whole: such a method runs fewer trials, its **effective budget** (CE, with nothing to
  tune, runs trial 0 only).

Every trial is an ordinary run on the tuning seeds. Once all of a setting's trials have finished, the rule of
:mod:`noisybench.tuning.selection` chooses one from their noisy-validation accuracy, and the grid's seeds run with the
chosen values (the evaluation stage). Tuning metadata (:attr:`RunConfig.tuning`: stage, trial, budget, seeds,
values, space) is recorded with each run but is not part of its id, so an evaluation run is the very run a
plain grid with the chosen values would plan.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from noisybench.config import Grid, RunConfig
from noisybench.errors import ConfigError, NoisybenchError, suggest
from noisybench.plan import PlanCell, Recipe, plan_cells, resolve_cell, resolve_train
from noisybench.registry import DATASETS
from noisybench.search_space import Choice, Dimension, IntUniform, LogUniform, Uniform, space_size
from noisybench.tuning.config import TUNABLE_RECIPE, TuneConfig
from noisybench.tuning.selection import RULE, CellChoice, select_trials

#: Significant digits kept of a continuous dimension's values.
DIGITS = 4
#: Most Sobol points drawn to find ``budget - 1`` distinct ones (finite spaces with repeated points).
MAX_DRAWS = 2**16
#: Trials a space check resolves beyond its corners (``check-method`` and every planned space).
CHECK_BUDGET = 8

Cell = tuple[str, str, str]


def sobol_seed(grid: str, method: str, dataset: str, noise: str) -> int:
    """The Sobol scrambling seed of a setting: 63 bits of SHA-256 of the four names (stable across processes)."""
    text = json.dumps([grid, method, dataset, noise], ensure_ascii=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def unit_points(dims: int, count: int, seed: int) -> list[list[float]]:
    """The first ``count`` points of the scrambled Sobol sequence in ``dims`` dimensions seeded with ``seed``."""
    from scipy.stats import qmc

    key = "rng" if "rng" in inspect.signature(qmc.Sobol).parameters else "seed"
    sampler = qmc.Sobol(dims, scramble=True, **{key: seed})
    return sampler.random_base2(max(0, math.ceil(math.log2(max(count, 1)))))[:count].tolist()


def value_at(dim: Dimension, u: float, like: Any = None) -> Any:
    """``dim.value_at(u)``: continuous values rounded to :data:`DIGITS` significant digits (kept inside the
    bounds); an integer of a float hyperparameter (``like``) becomes a float, so equal values name one run."""
    value = dim.value_at(u)
    if isinstance(dim, (Uniform, LogUniform)):
        value = min(max(float(f"{value:.{DIGITS}g}"), dim.low), dim.high)
    return _like(value, like)


def _like(value: Any, like: Any) -> Any:
    if isinstance(like, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True, default=str)


def trial_points(space: dict[str, Dimension], default: dict[str, Any], budget: int, seed: int) -> list[dict]:
    """Trial 0 (``default``), then up to ``budget - 1`` distinct points of ``space`` (see the module docstring)."""
    names = sorted(space)
    points, seen = [dict(default)], {_key(default)}
    if not names or budget <= 1:
        return points
    if space_size(space) <= budget:  # small enough to take whole, when the default fits too
        every = [dict(zip(names, combo)) for combo in itertools.product(*(_values(space[n], default.get(n))
                                                                         for n in names))]
        fresh = [p for p in every if _key(p) not in seen]
        if len(fresh) + 1 <= budget:
            return points + fresh
    drawn = 0
    count = 2 ** math.ceil(math.log2(budget - 1)) if budget > 2 else 1
    while len(points) < budget and drawn < MAX_DRAWS:
        block = unit_points(len(names), drawn + count, seed)[drawn:]  # the sequence is a prefix of a longer one
        drawn += count
        count = drawn
        for u in block:
            point = {n: value_at(space[n], x, default.get(n)) for n, x in zip(names, u)}
            if _key(point) not in seen:
                seen.add(_key(point))
                points.append(point)
                if len(points) == budget:
                    break
    return points


def _values(dim: Dimension, like: Any) -> list[Any]:
    values = dim.values if isinstance(dim, Choice) else range(dim.low, dim.high + 1)  # type: ignore[union-attr]
    return [_like(v, like) for v in values]


def corner_points(space: dict[str, Dimension], default: dict[str, Any]) -> list[dict[str, Any]]:
    """The corners of ``space`` (all of them up to 8 dimensions; beyond, each dimension's ends with the others at
    their default), for the checks that every point resolves."""
    names = sorted(space)
    if len(names) <= 8:
        return [{n: value_at(space[n], u, default.get(n)) for n, u in zip(names, us)}
                for us in itertools.product((0.0, 1.0), repeat=len(names))]
    return [{**default, n: value_at(space[n], u, default.get(n))} for n in names for u in (0.0, 1.0)]


def describe_space(space: dict[str, Dimension], recipe_keys: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """``{name: {"range", "kind", "source", "recipe"}}``, as plans, records and reports show a space."""
    kinds = {Choice: "choice", Uniform: "uniform", LogUniform: "log-uniform", IntUniform: "int-uniform"}
    recipe = set(recipe_keys)
    return {n: {"range": d.describe(), "kind": kinds[type(d)], "source": d.source, "recipe": n in recipe}
            for n, d in sorted(space.items())}


def recipe_dimension(key: str, value: Any, where: str) -> Dimension:
    """The range ``[tune] recipe`` gives recipe key ``key`` around the recipe's ``value`` (:data:`TUNABLE_RECIPE`)."""
    if key == "lr":
        return LogUniform(value / 3, value * 3, "suite")
    if key == "weight_decay":
        if not value > 0:
            raise ConfigError(f"{where}: recipe key weight_decay is 0 here, and its range is around the recipe's "
                              "value (log-uniform on [v / 10, 10 v]): set [train] weight_decay > 0 or drop it from "
                              "[tune] recipe")
        return LogUniform(value / 10, value * 10, "suite")
    raise ConfigError(f"{where}: recipe key {key!r} cannot be tuned; tunable: {', '.join(TUNABLE_RECIPE)}")


@dataclass(frozen=True)
class Trial:
    """One trial of a setting: its point of the space and the resolved run configuration it trains."""

    number: int
    values: dict[str, Any]
    hparams: dict[str, Any]
    sources: dict[str, str]
    recipe: Recipe


@dataclass
class TuneCell:
    """The tuning of one (dataset, noise, method): its space, its trials and the metadata its runs record."""

    cell: PlanCell
    space: dict[str, Dimension]
    recipe_keys: tuple[str, ...]
    trials: list[Trial]
    seed: int

    @property
    def key(self) -> Cell:
        """``(method, dataset, noise)``, as :mod:`noisybench.tuning.selection` names settings."""
        return self.cell.method, self.cell.dataset.name, str(self.cell.spec)

    @property
    def effective_budget(self) -> int:
        """How many distinct trials the setting runs."""
        return len(self.trials)

    def metadata(self, config: TuneConfig, stage: str, trial: Trial) -> dict[str, Any]:
        """What a run of ``trial`` records under ``tuning`` (not part of its id)."""
        return {"stage": stage, "trial": trial.number, "budget": config.budget,
                "effective_budget": self.effective_budget, "seeds": list(config.seeds), "values": dict(trial.values),
                "space": describe_space(self.space, self.recipe_keys), "rule": RULE}


@dataclass
class TunePlan:
    """Both stages of a tuned grid: the trials (known now) and the evaluation (known once they have run)."""

    grid: Grid
    config: TuneConfig
    cells: list[TuneCell] = field(default_factory=list)

    def trial_runs(self) -> list[RunConfig]:
        """Every trial of every setting on every tuning seed (the tuning stage)."""
        return [c.cell.run(seed, t.hparams, t.sources, t.recipe, c.metadata(self.config, "tune", t))
                for c in self.cells for t in c.trials for seed in self.config.seeds]

    def evaluation_runs(self, chosen: dict[Cell, int]) -> list[RunConfig]:
        """The grid's seeds with each setting's chosen trial (settings without a choice are left out)."""
        runs = []
        for c in self.cells:
            if c.key in chosen:
                trial = c.trials[chosen[c.key]]
                runs += [c.cell.run(seed, trial.hparams, trial.sources, trial.recipe,
                                    c.metadata(self.config, "eval", trial)) for seed in self.grid.seeds]
        return runs

    def budgets(self) -> dict[str, list[int]]:
        """Per method, the effective budget of each of its settings."""
        out: dict[str, list[int]] = {}
        for c in self.cells:
            out.setdefault(c.cell.method, []).append(c.effective_budget)
        return out

    def summary(self) -> str:
        """One line: the budget, the tuning seeds and each method's effective budget."""
        parts = [f"{m} {min(b)}" if min(b) == max(b) else f"{m} {min(b)}-{max(b)}" for m, b in self.budgets().items()]
        return (f"[tune] {self.config.describe()}: {len(self.trial_runs())} trial runs; effective budgets "
                f"{', '.join(parts)}")


def plan_tuning(grid: Grid) -> TunePlan:
    """The trials of every setting of ``grid`` (which has a ``[tune]`` table), validated before anything runs.

    Refused, naming the grid file and the key: a recipe without a noisy validation split (``val_fraction = 0``),
    a ``[tune.space]`` entry that is not a hyperparameter of its method, is also fixed in ``[methods.<name>]`` or
    has a point that the method's checks refuse, and a grid where no method has anything to tune.
    """
    config = grid.tune
    if config is None:
        raise NoisybenchError(f"{grid.source}: the grid has no [tune] table")
    plan = TunePlan(grid, config)
    for cell in plan_cells(grid):
        plan.cells.append(_tune_cell(grid, config, cell))
    if all(not c.space for c in plan.cells):
        methods = ", ".join(dict.fromkeys(c.cell.method for c in plan.cells))
        raise ConfigError(f"{grid.source}: [tune] budget = {config.budget}, but no method of the grid has anything to "
                          f"tune ({methods}: empty search spaces); add recipe = [\"lr\"] or a [tune.space.<method>] "
                          "table, or remove [tune]")
    return plan


def _tune_cell(grid: Grid, config: TuneConfig, cell: PlanCell) -> TuneCell:
    source, method = grid.source, cell.method
    if cell.recipe.train.val_fraction <= 0:
        tag = cell.recipe.sources.get("val_fraction", "suite")
        raise ConfigError(f"{source}: [tune] selects on noisy validation, but {method} on {cell.dataset.name} trains "
                          f"with val_fraction = 0 ({tag}): set [train] val_fraction > 0 or remove [tune]")
    fixed = dict(grid.method_params.get(method, {}))
    hparams, sources = resolve_cell(cell, fixed, source)
    space = _method_space(grid, config, cell, hparams, fixed)
    for key in config.recipe:
        if key in space:
            raise ConfigError(f"{source}: [tune] recipe: {key!r} is also a hyperparameter of {method}; tune one or "
                              "the other")
        space[key] = recipe_dimension(key, getattr(cell.recipe.train, key), f"{source}: [tune] recipe")
    train = cell.recipe.train.to_dict()
    default = {k: hparams[k] if k not in config.recipe else train[k] for k in space}
    where = f"[tune.space.{method}]" if method in config.space else "[tune]"
    for point in corner_points(space, default):
        _resolve(grid, config, cell, fixed, point, f"{source}: {where}")
    seed = sobol_seed(grid.name, method, cell.dataset.name, str(cell.spec))
    trials = [Trial(0, default, hparams, sources, cell.recipe)]
    for number, point in enumerate(trial_points(space, default, config.budget, seed)[1:], start=1):
        values, tuned_sources, recipe = _resolve(grid, config, cell, fixed, point, f"{source}: {where}")
        trials.append(Trial(number, point, values, tuned_sources, recipe))
    return TuneCell(cell, space, tuple(config.recipe), trials, seed)


def _method_space(grid: Grid, config: TuneConfig, cell: PlanCell, hparams: dict[str, Any],
                  fixed: dict[str, Any]) -> dict[str, Dimension]:
    """The method's declared space without the keys the grid fixes, or the grid's ``[tune.space.<name>]``."""
    method, source = cell.method, grid.source
    if method in config.space:
        space = dict(config.space[method])
        for key in space:
            if key in TUNABLE_RECIPE:
                raise ConfigError(f"{source}: [tune.space.{method}] {key} is a recipe key: list it in [tune] recipe to "
                                  "tune it for every method (each method gets the same range around its recipe)")
            if key not in hparams:
                raise ConfigError(f"{source}: [tune.space.{method}] {key}: {method} has no hyperparameter {key!r}."
                                  f"{suggest(key, hparams)} Known: {', '.join(sorted(hparams)) or 'none'}")
            if key in fixed:
                raise ConfigError(f"{source}: {key} is both fixed in [methods.{method}] and tuned in "
                                  f"[tune.space.{method}]; keep one")
        return space
    try:
        declared = cell.method_cls.search_space(cell.setting, dict(hparams))
    except TypeError as exc:
        raise NoisybenchError(f"method {method!r}: search_space(setting, hparams) failed ({exc}); it takes the "
                              "setting and the untuned hyperparameters") from None
    bad = [k for k, d in declared.items() if k not in hparams or not isinstance(d, (Choice, Uniform, LogUniform,
                                                                                     IntUniform))]
    if bad:
        raise NoisybenchError(f"method {method!r} declares a search space with {', '.join(map(repr, bad))}, which is "
                              "not one of its hyperparameters or not a noisybench.search_space dimension")
    return {k: d for k, d in declared.items() if k not in fixed}


def _resolve(grid: Grid, config: TuneConfig, cell: PlanCell, fixed: dict[str, Any], point: dict[str, Any],
             where: str) -> tuple[dict[str, Any], dict[str, str], Recipe]:
    """The run configuration of ``point``: tuned values tagged ``tuned``, refused naming ``where``."""
    tuned = {k: v for k, v in point.items() if k not in config.recipe}
    recipe_values = {k: v for k, v in point.items() if k in config.recipe}
    try:
        hparams, sources = cell.method_cls.resolve_hparams(cell.setting, {**fixed, **tuned})
    except ConfigError as exc:
        raise ConfigError(f"{where}: the point {_show(point)} is refused: {exc}") from None
    sources.update({k: "tuned" for k in tuned})
    recipe = cell.recipe
    if recipe_values:
        recipe = resolve_train(DATASETS.get(cell.dataset.name), cell.method_cls, {**grid.train, **recipe_values},
                               f"{where}: the point {_show(point)}")
        recipe = Recipe(recipe.train, {**recipe.sources, **{k: "tuned" for k in recipe_values}},
                        recipe.paper_schedule, recipe.paper_epochs, recipe.note)
    return hparams, sources, recipe


def _show(point: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in sorted(point.items()))


def check_space(method_cls: Any, setting: Any, hparams: dict[str, Any] | None = None) -> list[str]:
    """Problems of ``method_cls``'s declared space for ``setting`` ([] when none): every dimension names a
    hyperparameter, and every corner and every trial point a budget of :data:`CHECK_BUDGET` draws resolves and
    passes ``check_hparams`` (``noisybench check-method``)."""
    if hparams is None:
        hparams, _ = method_cls.resolve_hparams(setting, {})
    space = method_cls.search_space(setting, dict(hparams))
    problems = [f"{k!r} is not a hyperparameter" for k in space if k not in hparams]
    problems += [f"{k!r} is a {type(d).__name__}, not a noisybench.search_space dimension" for k, d in space.items()
                 if not isinstance(d, (Choice, Uniform, LogUniform, IntUniform))]
    if problems:
        return problems
    default = {k: hparams[k] for k in space}
    points = corner_points(space, default) + trial_points(space, default, CHECK_BUDGET, 0)
    for point in points:
        try:
            method_cls.resolve_hparams(setting, point)
        except ConfigError as exc:
            problems.append(f"point {_show(point)}: {exc}")
    return problems


def trial_rows(plan: TunePlan, store: Any) -> list[dict[str, Any]]:
    """One row per trial run for :func:`noisybench.tuning.selection.select_trials`: its status and noisy-validation
    accuracy, read from ``store`` (a :class:`~noisybench.store.ResultStore`); no other metric is read."""
    rows = []
    for c in plan.cells:
        for trial in c.trials:
            for seed in plan.config.seeds:
                run = c.cell.run(seed, trial.hparams, trial.sources, trial.recipe)
                record = store.result(run.run_id) or {}
                metrics = record.get("metrics") or {}
                rows.append({"method": c.key[0], "dataset": c.key[1], "noise": c.key[2], "trial": trial.number,
                             "seed": seed, "status": record.get("status", "missing"),
                             "val": metrics.get("val_acc_best")})
    return rows


def choose(plan: TunePlan, store: Any) -> dict[Cell, CellChoice]:
    """The selection rule applied to the finished trials in ``store``."""
    return select_trials(trial_rows(plan, store))


def describe_choice(cell: TuneCell, choice: CellChoice) -> str:
    """``gce on digits sym:0.2: trial 3 of 6 (q = 0.42), mean val acc 91.20 (worst trial 85.10)``."""
    method, dataset, noise = cell.key
    head = f"{method} on {dataset} {noise}"
    if choice.trial is None:
        return f"{head}: no trial finished on every tuning seed; not evaluated (see `noisybench status`)"
    values = _show(cell.trials[choice.trial].values) or "nothing to tune"
    return (f"{head}: trial {choice.trial} of {cell.effective_budget} ({values}), mean noisy-val acc "
            f"{choice.best:.2f} (worst trial {choice.worst:.2f})")


def render_tuned_plan(plan: TunePlan, fmt: str = "table") -> str:
    """``noisybench plan`` of a tuned grid: per setting, trial 0's recipe and hyperparameters (with provenance),
    the search space and every trial's values and run ids; then both stages' totals."""
    from noisybench.plan import describe_runs, render_block

    trials, grid, config = plan.trial_runs(), plan.grid, plan.config
    evaluation = len(plan.cells) * len(grid.seeds)
    eval_epochs = sum(c.cell.recipe.train.epochs for c in plan.cells) * len(grid.seeds)
    total = {"num_runs": len(trials) + evaluation, "tuning_runs": len(trials), "evaluation_runs": evaluation,
             "num_epochs": sum(r.train.epochs for r in trials) + eval_epochs}
    ids = {(r.method, r.dataset.name, r.noise, r.tuning["trial"]): [] for r in trials}
    for r in trials:
        ids[(r.method, r.dataset.name, r.noise, r.tuning["trial"])].append(r.run_id)
    cells = [{"dataset": c.key[1], "noise": c.key[2], "method": c.key[0], "sobol_seed": c.seed,
              "effective_budget": c.effective_budget, "space": describe_space(c.space, c.recipe_keys),
              "trials": [{"trial": t.number, "values": t.values, "run_ids": ids[(*c.key, t.number)]}
                         for t in c.trials]} for c in plan.cells]
    defaults = describe_runs([r for r in trials if r.tuning["trial"] == 0])
    head = {"budget": config.budget, "seeds": list(config.seeds), "recipe": list(config.recipe), "rule": RULE,
            "evaluation_seeds": list(grid.seeds)}
    if fmt == "json":
        return json.dumps({"tuning": {**head, "cells": cells}, "configurations": defaults, "total": total},
                          indent=1, sort_keys=True, default=str) + "\n"
    blocks = [f"[tune] {config.describe()}. Selection per setting: {RULE}. The evaluation stage then runs seeds "
              f"{', '.join(map(str, grid.seeds))} with the chosen trial's values."]
    seeds_text = (f"trials on tuning seeds {', '.join(map(str, config.seeds))}; evaluation on seeds "
                  f"{', '.join(map(str, grid.seeds))}")
    for group, cell in zip(defaults, cells):
        blocks.append("\n".join([render_block(group, seeds_text), *_trial_lines(cell)]))
    blocks.append(f"{total['num_runs']} runs ({total['tuning_runs']} tuning, {total['evaluation_runs']} evaluation), "
                  f"{total['num_epochs']} epochs in total")
    return "\n\n".join(blocks) + "\n"


def _trial_lines(cell: dict[str, Any]) -> list[str]:
    from tabulate import tabulate

    if not cell["space"]:
        return ["search space: empty (trial 0 only; effective budget 1)"]
    space = "; ".join(f"{k} {d['range']} ({d['source']}{', recipe' if d['recipe'] else ''})"
                      for k, d in cell["space"].items())
    names = list(cell["space"])
    rows = [[t["trial"], *(_cell_value(t["values"][n]) for n in names), " ".join(t["run_ids"])] for t in cell["trials"]]
    return [f"search space: {space}; effective budget {cell['effective_budget']}; Sobol seed {cell['sobol_seed']}",
            tabulate(rows, headers=["trial", *names, "run ids"], tablefmt="simple", disable_numparse=True)]


def _cell_value(value: Any) -> str:
    return f"{value:.{DIGITS}g}" if isinstance(value, float) else str(value)
