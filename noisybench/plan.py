"""Expanding a grid into resolved, validated run configurations."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from noisybench.config import (
    ID_NEUTRAL_TRAIN_KEYS,
    DatasetRef,
    Grid,
    RunConfig,
    TrainConfig,
    is_neutral,
    legacy_profile_message,
)
from noisybench.data import split_problem
from noisybench.errors import ConfigError, suggest
from noisybench.facts import PAPER, PROTOCOLS, SHARED, Setting
from noisybench.grid_checks import check_arch_options, naming
from noisybench.method import RECIPE_KEYS, RecipeQuery
from noisybench.noise import NoiseSpec, parse_noise
from noisybench.plugins import load_environment_plugins, load_plugin_folders
from noisybench.registry import DATASETS, METHODS, MODELS, NOISES
from noisybench.validate import check_distinct


@dataclass(frozen=True)
class Recipe:
    """A resolved training recipe: the run's :class:`TrainConfig`, each value's provenance, and
    whether it is the method's published schedule (``paper_schedule``) or a fallback (``note``)."""

    train: TrainConfig
    sources: dict[str, str]
    paper_schedule: bool
    paper_epochs: int | None
    note: str = ""
    refs: dict[str, str] = field(default_factory=dict)  # citation of each published value, where the recipe gives one


def protocols(dataset_cls: Any) -> list[str]:
    """Protocol names a grid may choose for ``dataset_cls``: shared, paper, then its other recipes."""
    return [*PROTOCOLS, *(name for name in dataset_cls.recipes if name not in PROTOCOLS)]


def resolve_train(dataset_cls: Any, method_cls: Any, overrides: dict[str, Any],
                  source: str = "[train]", noise: RecipeQuery | None = None) -> Recipe:
    """The recipe of ``method_cls`` on ``dataset_cls`` under the grid's ``[train]`` table.

    ``protocol = "shared"`` (default) or another shared recipe name: the dataset's recipe.
    ``protocol = "paper"``: what the method's :meth:`~noisybench.method.Method.paper_recipe` gives for
    the dataset's family and the noise (``noise``; symmetric noise when not given), over the shared
    recipe; without one, the shared recipe, tagged ``suite``. Other ``[train]`` keys override any recipe
    and are tagged ``user``. An augmentation policy or ``normalize = false`` the dataset lacks is refused.
    """
    overrides = dict(overrides)
    if "profile" in overrides:
        raise ConfigError(legacy_profile_message(overrides["profile"], source))
    protocol = overrides.pop("protocol", SHARED)
    names = protocols(dataset_cls)
    if protocol not in names:
        raise ConfigError(f"{source}: protocol {protocol!r} is not available for dataset {dataset_cls.name!r}."
                          f"{suggest(str(protocol), names)} Protocols: {', '.join(names)}")
    shared = dataset_cls.recipes[SHARED if protocol == PAPER else protocol]
    query = noise or RecipeQuery(dataset_cls.family)
    query = RecipeQuery(dataset_cls.family, dataset_cls.base_family, query.noise_kind, query.class_map,
                        query.noise_rate, query.noise_arg)
    published = method_cls.paper_recipe(query) if dataset_cls.family else None
    values = dict(shared)
    sources = {key: "suite" for key in shared}
    note = ""
    if protocol == PAPER and published is None:
        note = f"{method_cls.name} has no published recipe for {dataset_cls.name}; shared recipe (suite)"
    elif protocol == PAPER:
        if "arch" in published and published["arch"].value != shared.get("arch"):
            values.pop("arch_kwargs", None)  # the shared network's options do not fit another network
            sources.pop("arch_kwargs", None)
        values.update({key: hp.value for key, hp in published.items()})
        sources.update({key: hp.source for key, hp in published.items()})
    values.update(overrides)
    sources.update({key: "user" for key in overrides})
    values.setdefault("val_fraction", dataset_cls.val_fraction)
    train = TrainConfig.from_dict({**values, "protocol": protocol}, where=source)
    _check_views(train, dataset_cls, source)
    paper_epochs = published["epochs"].value if published is not None and "epochs" in published else None
    on_paper = protocol == PAPER and published is not None and "epochs" not in overrides
    refs = {k: hp.ref for k, hp in (published or {}).items() if protocol == PAPER and hp.ref and k not in overrides}
    return Recipe(train, {k: sources[k] for k in sorted(sources)}, on_paper, paper_epochs, note, refs)


def _check_views(train: TrainConfig, dataset_cls: Any, source: str) -> None:
    """The recipe's augmentation policy and ``normalize`` must exist for the dataset."""
    if isinstance(train.augment, str) and train.augment not in dataset_cls.policy_names():
        raise ConfigError(f"{source}: augment {train.augment!r} is not an augmentation policy of dataset "
                          f"{dataset_cls.name!r}.{suggest(train.augment, dataset_cls.policy_names())} Its policies: "
                          f"{', '.join(dataset_cls.policy_names())} (or true / false)")
    if not train.normalize and not dataset_cls.can_skip_normalization:
        raise ConfigError(f"{source}: normalize = false has no meaning for dataset {dataset_cls.name!r}: its inputs "
                          "are not normalised per channel; remove normalize")


def noise_query(dataset_cls: Any, spec: NoiseSpec) -> RecipeQuery:
    """The facts a method's paper recipe may depend on, for ``spec`` on ``dataset_cls``."""
    noise = NOISES.get(spec.family)
    return RecipeQuery(dataset_cls.family, dataset_cls.base_family, noise.kind, noise.class_map, spec.rate, spec.arg)


def check_recipe(recipe: Recipe, dataset: Any, source: str) -> None:
    """Refuse, naming the grid file and key, a recipe whose network is not registered or does not take its
    ``arch_kwargs``, and one whose validation split would leave the training or the validation set empty (where
    ``dataset`` knows its class sizes without loading: :meth:`~noisybench.data.Dataset.train_class_counts`)."""
    train = recipe.train
    arch = train.arch or dataset.default_arch
    with naming(source, "[train] arch"):
        builder = MODELS.get(arch)
    check_arch_options(arch, builder, train.arch_kwargs, f"{source}: [train] arch_kwargs")
    counts = dataset.train_class_counts()
    problem = split_problem(counts, train.val_fraction) if counts is not None else ""
    if problem:
        tag = recipe.sources.get("val_fraction", "suite")
        raise ConfigError(f"{source}: [train] val_fraction ({tag}) for {dataset.name}: {problem}")


def make_setting(dataset_cls: Any, spec: NoiseSpec, num_classes: int, recipe: Recipe,
                 dataset_name: str | None = None) -> Setting:
    """The :class:`Setting` a method resolves its hyperparameters for: the dataset's and noise model's facts."""
    noise = NOISES.get(spec.family)
    train = recipe.train
    return Setting(
        dataset=dataset_name or dataset_cls.name, noise_family=spec.family, noise_rate=spec.rate,
        num_classes=num_classes, epochs=train.epochs, noise_kind=noise.kind, class_map=noise.class_map,
        family=dataset_cls.family, base_family=dataset_cls.base_family, protocol=train.protocol,
        paper_epochs=recipe.paper_epochs, paper_schedule=recipe.paper_schedule, noise_arg=spec.arg,
        milestones=tuple(train.milestones) if train.schedule == "step" else (),
    )


@dataclass(frozen=True)
class PlanCell:
    """One (dataset, noise, method) of a grid, resolved and validated: what all its runs share."""

    dataset: DatasetRef
    spec: NoiseSpec
    method_cls: Any
    recipe: Recipe
    setting: Setting
    grid: str
    data_root: str | None
    plugins: tuple[str, ...]

    @property
    def method(self) -> str:
        """The method's registry name."""
        return self.method_cls.name

    def run(self, seed: int, hparams: dict[str, Any], sources: dict[str, str], recipe: Recipe | None = None,
            tuning: dict[str, Any] | None = None) -> RunConfig:
        """The run of this cell with ``seed``, ``hparams`` and (default: the cell's) ``recipe``."""
        recipe = recipe or self.recipe
        neutral = {k: v for k, v in self.method_cls.id_neutral_hparams.items() if k in hparams}
        return RunConfig(dataset=self.dataset, noise=str(self.spec), method=self.method, hparams=hparams,
                         hparam_sources=sources, seed=seed, train=recipe.train, train_sources=dict(recipe.sources),
                         grid=self.grid, data_root=self.data_root, plugins=self.plugins, tuning=dict(tuning or {}),
                         neutral_hparams=neutral, train_refs=dict(recipe.refs))


def plan_cells(grid: Grid) -> list[PlanCell]:
    """Every (dataset, noise, method) of ``grid``, in plan order (datasets, then noise, then methods).

    Names, noise specs, protocols and recipes are all validated here, before anything runs; every refusal names
    the grid file and the key. The grid's ``[plugins] paths`` and ``$NOISYBENCH_PLUGINS`` are loaded first; each
    cell carries those folders.
    """
    plugins = load_environment_plugins()
    with naming(grid.source, "[plugins] paths"):
        plugins = tuple(dict.fromkeys([*plugins, *load_plugin_folders(grid.plugins, "[plugins] paths:")]))
    with naming(grid.source, "[grid] noise"):
        specs = [parse_noise(n) for n in grid.noise]
        check_distinct(grid.noise, [str(s) for s in specs], f"{grid.source}: [grid]", "noise")
    with naming(grid.source, "[grid] methods"):
        method_classes = [METHODS.get(m) for m in grid.methods]
    with naming(grid.source, "[grid] datasets"):
        dataset_classes = [DATASETS.get(d) for d in grid.datasets]
    _check_tables_are_used(grid)
    cells = []
    for ds_name, ds_cls in zip(grid.datasets, dataset_classes):
        params = dict(grid.dataset_params.get(ds_name, {}))
        with naming(grid.source, f"[datasets.{ds_name}]"):
            dataset = ds_cls(root=None, **params)  # validates params, loads nothing
        recipes: dict[tuple[str, RecipeQuery], Recipe] = {}
        for spec in specs:
            with naming(grid.source, "[grid] noise"):
                NOISES.get(spec.family).check(spec, ds_cls)
            query = noise_query(ds_cls, spec)
            for method_cls in method_classes:
                key = (method_cls.name, query)
                if key not in recipes:  # one resolution per method and noise facts
                    recipes[key] = resolve_train(ds_cls, method_cls, grid.train, f"{grid.source}: [train]", query)
                    check_recipe(recipes[key], dataset, grid.source)
                recipe = recipes[key]
                cells.append(PlanCell(
                    DatasetRef(ds_name, dict(sorted(params.items()))), spec, method_cls, recipe,
                    make_setting(ds_cls, spec, dataset.num_classes, recipe, ds_name), grid.name, grid.data_root,
                    plugins))
    return cells


def resolve_cell(cell: PlanCell, overrides: dict[str, Any], source: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The cell's hyperparameters with ``overrides`` (``[methods.<name>]``), refused naming the grid file."""
    with naming(source, f"[methods.{cell.method}]"):
        return cell.method_cls.resolve_hparams(cell.setting, overrides)


def expand_grid(grid: Grid) -> list[RunConfig]:
    """Every (dataset, noise, method, seed) of ``grid`` as a :class:`RunConfig` (see :func:`plan_cells`).

    A grid with ``[tune]`` runs in two stages (:mod:`noisybench.tuning.trials`); this is its plain expansion, every
    method at its default values on the grid's seeds.
    """
    runs = []
    for cell in plan_cells(grid):
        hparams, sources = resolve_cell(cell, grid.method_params.get(cell.method, {}), grid.source)
        runs += [cell.run(seed, hparams, sources) for seed in grid.seeds]
    return runs


def describe_runs(runs: list[RunConfig]) -> list[dict[str, Any]]:
    """Every distinct configuration of ``runs`` (seeds grouped): protocol, recipe and hyperparameters,
    each value with its provenance, as ``noisybench plan`` shows them. Loads no data."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for run in runs:
        key = (run.dataset.name, repr(sorted(run.dataset.params.items())), run.noise, run.method,
               repr(sorted(run.sweep.items())))
        if key in groups:
            groups[key]["seeds"].append(run.seed)
            groups[key]["run_ids"].append(run.run_id)
            continue
        train = run.train.to_dict()
        if train["arch"] is None:
            train["arch"] = DATASETS.get(run.dataset.name).default_arch
        recipe = {k: {"value": train[k], "source": run.train_sources.get(k, "suite"), "ref": run.train_refs.get(k, "")}
                  for k in RECIPE_KEYS}
        paper_sources = {"paper", "paper-default"}
        note = ""
        if run.train.protocol == PAPER and not paper_sources & set(run.train_sources.values()):
            note = f"{run.method} has no published recipe for {run.dataset.name}: shared recipe (suite)"
        groups[key] = {
            "dataset": run.dataset.name, "noise": run.noise, "method": run.method, "protocol": run.train.protocol,
            "seeds": [run.seed], "run_ids": [run.run_id], "epochs": run.train.epochs, "note": note,
            "recipe": recipe, "sweep": dict(run.sweep),
            "deviations": list(METHODS.get(run.method).deviations_for(run.hparams)),
            "reproduced": list(METHODS.get(run.method).reproduced),
            "hparams": {k: {"value": v, "source": run.hparam_sources.get(k, "suite")} for k, v in run.hparams.items()},
        }
    return list(groups.values())


def render_plan(runs: list[RunConfig], fmt: str = "table") -> str:
    """``noisybench plan`` output: ``table`` (one block per configuration) or ``json``."""
    import json

    groups = describe_runs(runs)
    total = {"num_runs": len(runs), "num_epochs": sum(r.train.epochs for r in runs)}
    if fmt == "json":
        return json.dumps({"configurations": groups, "total": total}, indent=1, sort_keys=True, default=str) + "\n"
    blocks = [render_block(g) for g in groups]
    blocks.append(f"{total['num_runs']} runs, {total['num_epochs']} epochs in total")
    return "\n\n".join(blocks) + "\n"


def render_block(g: dict[str, Any], seeds_text: str | None = None) -> str:
    """One configuration of :func:`describe_runs` as ``plan`` prints it (``seeds_text`` replaces the seed list)."""
    from tabulate import tabulate

    seeds = seeds_text or (f"seeds {', '.join(str(s) for s in g['seeds'])} "
                           f"({len(g['seeds'])} runs x {g['epochs']} epochs)")
    head = f"== {g['dataset']} | {g['noise']} | {g['method']} | protocol {g['protocol']} | {seeds} =="
    quiet = [k for k, v in g["recipe"].items() if is_neutral(k, v["value"], ID_NEUTRAL_TRAIN_KEYS)]
    rows = [("recipe", k, _show(v["value"]), v["source"], v["ref"]) for k, v in g["recipe"].items() if k not in quiet]
    rows += [("hparam", k, _show(v["value"]), v["source"], "") for k, v in sorted(g["hparams"].items())]
    headers = ["", "key", "value", "source", "reference"]
    if not any(row[4] for row in rows):  # no citation to show: the table keeps its four columns
        rows, headers = [row[:4] for row in rows], headers[:4]
    lines = [head, *([f"note: {g['note']}"] if g["note"] else [])]
    lines += [textwrap.fill(f"deviation from the reference code: {text}", 116, subsequent_indent="  ")
              for text in g["deviations"]]
    lines += [textwrap.fill(f"as the reference code: {text}", 116, subsequent_indent="  ")
              for text in g.get("reproduced", ())]
    lines.append(tabulate(rows, headers=headers, tablefmt="simple"))
    if quiet:
        lines.append(f"at their neutral value (not in the run id): {', '.join(quiet)}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _check_tables_are_used(grid: Grid) -> None:
    """``[methods.X]``, ``[tune.space.X]`` and ``[datasets.X]`` must configure something the grid runs."""
    for table, names, registry, used, what in (
        ("methods", grid.method_params, METHODS, grid.methods, "configures a method the grid does not run"),
        ("tune.space", grid.tune.space if grid.tune else {}, METHODS, grid.methods,
         "tunes a method the grid does not run"),
        ("datasets", grid.dataset_params, DATASETS, grid.datasets, "configures a dataset the grid does not use"),
    ):
        for name in names:
            if name not in used:
                with naming(grid.source, f"[{table}.{name}]"):
                    registry.get(name)  # unknown names raise with suggestions
                axis = "datasets" if table == "datasets" else "methods"
                raise ConfigError(f"{grid.source}: [{table}.{name}] {what}; add {name!r} to [grid] {axis} "
                                  "or remove the table")
