"""Expanding a grid into resolved, validated run configurations."""

from __future__ import annotations

import itertools
from typing import Any

from noisybench.config import DatasetRef, Grid, RunConfig, TrainConfig
from noisybench.errors import ConfigError, suggest
from noisybench.facts import Setting
from noisybench.grid_checks import naming
from noisybench.noise import NoiseSpec, parse_noise
from noisybench.registry import DATASETS, METHODS, NOISES
from noisybench.validate import check_distinct


def resolve_train(dataset_cls: Any, overrides: dict[str, Any], source: str = "[train]") -> TrainConfig:
    """The dataset's profile (``[train] profile``, else its default) plus grid overrides."""
    profile = overrides.get("profile", dataset_cls.default_profile)
    if not isinstance(profile, str):
        raise ConfigError(f"{source} profile must be a string, got {profile!r}")
    if profile not in dataset_cls.profiles:
        raise ConfigError(
            f"{source}: dataset {dataset_cls.name!r} has no profile {profile!r}."
            f"{suggest(profile, dataset_cls.profiles)} Profiles: {', '.join(dataset_cls.profiles)}"
        )
    values = {**dataset_cls.profiles[profile], **overrides, "profile": profile}
    values.setdefault("val_fraction", dataset_cls.val_fraction)
    return TrainConfig.from_dict(values, where=source)


def make_setting(dataset_cls: Any, spec: NoiseSpec, num_classes: int, train: TrainConfig,
                 dataset_name: str | None = None) -> Setting:
    """The :class:`Setting` a method resolves its hyperparameters for: the dataset's and noise model's facts."""
    return Setting(
        dataset=dataset_name or dataset_cls.name, noise_family=spec.family, noise_rate=spec.rate,
        num_classes=num_classes, epochs=train.epochs, noise_kind=NOISES.get(spec.family).kind,
        family=dataset_cls.family, base_family=dataset_cls.base_family, profile=train.profile,
        paper_epochs=dataset_cls.profiles.get("paper", {}).get("epochs"), noise_arg=spec.arg,
    )


def sweep_points(grid: Grid, method: str) -> list[dict[str, Any]]:
    """Every combination of the method's ``[sweep.<method>]`` values ([{}] without a sweep)."""
    table = grid.sweep.get(method, {})
    clash = sorted(set(table) & set(grid.method_params.get(method, {})))
    if clash:
        raise ConfigError(f"{grid.source}: {', '.join(clash)} is both fixed in [methods.{method}] and swept in "
                          f"[sweep.{method}]; keep one")
    keys = sorted(table)
    return [dict(zip(keys, values)) for values in itertools.product(*(table[k] for k in keys))]


def expand_grid(grid: Grid) -> list[RunConfig]:
    """Every (dataset, noise, method, seed) of ``grid`` as a :class:`RunConfig`.

    Names, noise specs, profiles and hyperparameters are all validated before anything runs;
    every refusal names the grid file and the key.
    """
    with naming(grid.source, "[grid] noise"):
        specs = [parse_noise(n) for n in grid.noise]
        check_distinct(grid.noise, [str(s) for s in specs], f"{grid.source}: [grid]", "noise")
    with naming(grid.source, "[grid] methods"):
        method_classes = [METHODS.get(m) for m in grid.methods]
    with naming(grid.source, "[grid] datasets"):
        dataset_classes = [DATASETS.get(d) for d in grid.datasets]
    _check_tables_are_used(grid)
    runs = []
    for ds_name, ds_cls in zip(grid.datasets, dataset_classes):
        params = dict(grid.dataset_params.get(ds_name, {}))
        with naming(grid.source, f"[datasets.{ds_name}]"):
            num_classes = ds_cls(root=None, **params).num_classes  # validates params, loads nothing
        train = resolve_train(ds_cls, grid.train, f"{grid.source}: [train]")
        for spec in specs:
            with naming(grid.source, "[grid] noise"):
                NOISES.get(spec.family).check(spec, ds_cls)
            setting = make_setting(ds_cls, spec, num_classes, train, ds_name)
            for method_cls in method_classes:
                for point in sweep_points(grid, method_cls.name):
                    overrides = {**grid.method_params.get(method_cls.name, {}), **point}
                    with naming(grid.source, f"[methods.{method_cls.name}]"):
                        hparams, sources = method_cls.resolve_hparams(setting, overrides)
                    sources.update({key: "tuned" for key in point})
                    for seed in grid.seeds:
                        runs.append(RunConfig(
                            dataset=DatasetRef(ds_name, dict(sorted(params.items()))),
                            noise=str(spec), method=method_cls.name, hparams=hparams,
                            hparam_sources=sources, seed=seed, train=train,
                            grid=grid.name, data_root=grid.data_root, sweep=dict(point),
                        ))
    return runs


def _check_tables_are_used(grid: Grid) -> None:
    """``[methods.X]``, ``[sweep.X]`` and ``[datasets.X]`` must configure something the grid runs."""
    for table, names, registry, used, what in (
        ("methods", grid.method_params, METHODS, grid.methods, "configures a method the grid does not run"),
        ("sweep", grid.sweep, METHODS, grid.methods, "sweeps a method the grid does not run"),
        ("datasets", grid.dataset_params, DATASETS, grid.datasets, "configures a dataset the grid does not use"),
    ):
        for name in names:
            if name not in used:
                with naming(grid.source, f"[{table}.{name}]"):
                    registry.get(name)  # unknown names raise with suggestions
                axis = "datasets" if table == "datasets" else "methods"
                raise ConfigError(f"{grid.source}: [{table}.{name}] {what}; add {name!r} to [grid] {axis} "
                                  "or remove the table")
