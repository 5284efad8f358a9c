"""Training configuration, grid files and resolved run configurations.

A grid file (TOML) lists datasets x noise x methods x seeds; :func:`expand_grid` resolves each
combination into a :class:`RunConfig` whose id is a hash of everything that determines the
result, so a rerun finds finished runs by id.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noisybench.errors import ConfigError, NoisybenchError, suggest
from noisybench.grid_checks import check_grid_table
from noisybench.tuning.config import TuneConfig, parse_tune
from noisybench.validate import check_distinct, check_fields, matches

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA_VERSION = 1
#: TrainConfig fields that cannot change a run's numbers, so they stay out of its id.
RESULT_NEUTRAL_TRAIN_KEYS = frozenset({"num_workers"})
#: TrainConfig fields added after the first schema, each with its neutral value: the value that trains exactly
#: as the suite did before the field existed. At that value a field stays out of the run id, so adding a field
#: leaves every existing run id (and stored run) as it was; any other value is part of the id.
ID_NEUTRAL_TRAIN_KEYS: dict[str, Any] = {
    "eta_min": 0.0, "restart_every": None, "adam_beta1_tail": None, "lr_decay_per_step": 0.0,
    "grad_clip_norm": None, "weight_decay_by_module": {}, "normalize": True, "phases": [],
}
#: torch.compile backends ``[train] compile`` may name (``true`` means inductor).
COMPILE_BACKENDS = frozenset({"inductor", "eager", "aot_eager", "cudagraphs"})


@dataclass(frozen=True)
class TrainConfig:
    """The shared trainer's budget and optimiser (a recipe) and the protocol that chose it.

    ``protocol`` is ``"shared"`` (the dataset's one recipe for every method; the default),
    ``"paper"`` (the method's own published recipe, falling back to ``shared``) or the name of
    another shared recipe the dataset declares (``"fast"``). It is part of the run id.
    """

    protocol: str = "shared"
    arch: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 40
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # see noisybench.schedules: cosine, step, constant, linear-tail, cosine-restarts
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    augment: bool | str = True  # true: the dataset's default policy; false: none; or a policy's name
    val_fraction: float = 0.1
    mean_last_k: int = 10
    eval_batch_size: int = 2048
    device: str = "auto"
    amp: bool | str = "auto"  # bf16 autocast: "auto" = CUDA with compute capability >= 8.0; true = anywhere
    channels_last: bool = True  # channels_last memory format for 4-D inputs, effective on CUDA only
    compile: bool | str = False  # torch.compile the networks' forward; true = inductor, or a backend name
    deterministic: bool = True  # deterministic algorithms (see noisybench.runtime); false = cudnn.benchmark
    threads: int = 1  # torch CPU threads of the run (part of the run id: results depend on it)
    num_workers: int = 4  # DataLoader workers of streamed (on-disk) datasets; no effect on results
    # Fields added after the first schema (ID_NEUTRAL_TRAIN_KEYS): out of the run id at their neutral value.
    eta_min: float = 0.0  # floor of the cosine schedules
    restart_every: int | None = None  # period (epochs) of schedule "cosine-restarts"
    adam_beta1_tail: float | None = None  # Adam's beta_1 from the tail start of schedule "linear-tail"
    lr_decay_per_step: float = 0.0  # Keras-style decay: the epoch's lr / (1 + d * optimiser steps so far)
    grad_clip_norm: float | None = None  # clip each network's gradient norm to this before its optimiser steps
    weight_decay_by_module: dict[str, float] = field(default_factory=dict)  # {name prefix or "kernels": wd}
    normalize: bool = True  # false: network input without the dataset's normalisation (images in [0, 1])
    phases: list[dict[str, Any]] = field(default_factory=list)  # consecutive optimiser/schedule phases

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "[train]") -> TrainConfig:
        """Build from a dict, refusing unknown keys with a suggestion."""
        names = [f.name for f in dataclasses.fields(cls)]
        if "profile" in values:
            raise ConfigError(legacy_profile_message(values["profile"], where))
        for key in values:
            if key not in names:
                raise ConfigError(f"{where}: unknown key {key!r}.{suggest(key, names)} Known keys: {', '.join(names)}")
        check_fields(values, cls, where)  # "ten" epochs, 2.5 epochs, true epochs
        config = cls(**values)
        config.validate(where)
        return config

    def validate(self, where: str = "[train]") -> None:
        """Check ranges and choices; raise :class:`ConfigError` naming the key.

        Values that would fail every run or train garbage are refused too: a negative weight decay, a momentum
        outside [0, 1), a step schedule whose milestones are not increasing epochs inside the run, a decay
        factor ``gamma`` outside (0, 1].
        """
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay:g}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum:g}"),
            (0 < self.gamma <= 1, f"gamma must be in (0, 1] (the learning rate's factor at each milestone), "
                                  f"got {self.gamma:g}"),
            (self.schedule != "step" or _milestones_fit(self.milestones, self.epochs),
             f"milestones {self.milestones} must be increasing epochs in 1 .. {self.epochs - 1}, each once (at or "
             f"after the last epoch a milestone never lowers the learning rate): set [train] milestones for a "
             f"{self.epochs}-epoch run, or schedule = \"cosine\""),
            (self.optimizer in {"sgd", "adam"}, "optimizer must be 'sgd' or 'adam'"),
            (0 <= self.val_fraction < 1, "val_fraction must be in [0, 1)"),
            (self.mean_last_k >= 1, "mean_last_k must be >= 1"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (isinstance(self.threads, int) and self.threads >= 1, "threads must be an integer >= 1 (CPU threads)"),
            (re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None,
             f"device must be auto, cpu or cuda[:N], got {self.device!r}"),
            (isinstance(self.amp, bool) or self.amp == "auto",
             f"amp must be \"auto\" (bf16 on CUDA with compute capability >= 8.0), true or false, got {self.amp!r}"),
            (isinstance(self.compile, bool) or (isinstance(self.compile, str) and self.compile in COMPILE_BACKENDS),
             f"compile must be true, false or a backend ({', '.join(sorted(COMPILE_BACKENDS))}), got {self.compile!r}"),
            (isinstance(self.deterministic, bool), f"deterministic must be true or false, got {self.deterministic!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{where} {message}")
        self._validate_extensions(where)

    def _validate_extensions(self, where: str) -> None:
        """The keys added after the first schema (schedules, clipping, per-module decay, views, phases)."""
        from noisybench.schedules import check_phases, check_schedule

        check_schedule(self, where)
        checks = [
            (self.grad_clip_norm is None or self.grad_clip_norm > 0,
             f"grad_clip_norm must be > 0 (or left out for no clipping), got {self.grad_clip_norm!r}"),
            (all(isinstance(k, str) and k for k in self.weight_decay_by_module),
             "weight_decay_by_module keys must be parameter-name prefixes (e.g. \"fc1\") or \"kernels\""),
            (all(matches(v, float) and v >= 0 for v in self.weight_decay_by_module.values()),
             f"weight_decay_by_module values must be weight decays >= 0, got {self.weight_decay_by_module!r}"),
            (not isinstance(self.augment, str) or bool(self.augment.strip()),
             "augment must be true, false or the name of one of the dataset's augmentation policies"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{where} {message}")
        check_phases(self, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, as stored in a run's config."""
        return dataclasses.asdict(self)

    @functools.cached_property
    def identity_items(self) -> dict[str, Any]:
        """The fields that enter run ids (see :meth:`RunConfig.identity`), computed once per recipe: the runs of
        a plan's cell share one frozen recipe, so a 10,000-run plan converts each recipe once, not per run."""
        return {k: v for k, v in self.to_dict().items()
                if k not in RESULT_NEUTRAL_TRAIN_KEYS and not is_neutral(k, v, ID_NEUTRAL_TRAIN_KEYS)}


def _milestones_fit(milestones: list[int], epochs: int) -> bool:
    """Strictly increasing epochs in ``1 .. epochs - 1``."""
    return all(1 <= m < epochs for m in milestones) and all(a < b for a, b in zip(milestones, milestones[1:]))


@dataclass(frozen=True)
class DatasetRef:
    """A dataset by registry name and constructor parameters (part of the run id)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "params"}`` with sorted parameters, as stored in a run's config."""
        return {"name": self.name, "params": dict(sorted(self.params.items()))}


@dataclass(frozen=True)
class RunConfig:
    """One fully resolved run. ``run_id`` hashes every field that changes the result."""

    dataset: DatasetRef
    noise: str
    method: str
    hparams: dict[str, Any]
    hparam_sources: dict[str, str]
    seed: int
    train: TrainConfig
    train_sources: dict[str, str] = field(default_factory=dict)  # provenance of each recipe value
    grid: str = ""
    data_root: str | None = None
    schema: int = SCHEMA_VERSION
    sweep: dict[str, Any] = field(default_factory=dict)  # a [sweep.<method>] point (records made before [tune])
    plugins: tuple[str, ...] = ()  # local plugin folders its workers load (not part of the id)
    tuning: dict[str, Any] = field(default_factory=dict)  # [tune] stage, trial, budget, seeds (not part of the id)
    #: the method's ``id_neutral_hparams``: hyperparameters at these values stay out of the run id
    neutral_hparams: dict[str, Any] = field(default_factory=dict)
    train_refs: dict[str, str] = field(default_factory=dict)  # citation of each paper recipe value, where known

    def identity(self) -> dict[str, Any]:
        """The fields that determine the result (not the grid name, data path, plugin folders, loader
        workers or tuning metadata: a plugin's code is pinned by the fingerprint).

        Recipe fields and hyperparameters added after the first schema stay out while at their neutral
        value (:data:`ID_NEUTRAL_TRAIN_KEYS`, the method's ``id_neutral_hparams``), so adding one changes no
        existing run id.
        """
        train = dict(self.train.identity_items)
        hparams = {k: v for k, v in self.hparams.items() if not is_neutral(k, v, self.neutral_hparams)}
        return {
            "schema": self.schema, "dataset": self.dataset.to_dict(), "noise": self.noise,
            "method": self.method, "hparams": hparams, "seed": self.seed, "train": train,
        }

    @functools.cached_property
    def run_id(self) -> str:
        """A 16-hex-digit content hash of :meth:`identity` (computed once)."""
        text = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict including the run id."""
        return {
            "run_id": self.run_id, "dataset": self.dataset.to_dict(), "noise": self.noise, "method": self.method,
            "hparams": dict(self.hparams), "hparam_sources": dict(self.hparam_sources), "seed": self.seed,
            "train": self.train.to_dict(), "train_sources": dict(self.train_sources), "grid": self.grid,
            "data_root": self.data_root, "schema": self.schema,
            "sweep": dict(self.sweep), "neutral_hparams": dict(self.neutral_hparams),
            "train_refs": dict(self.train_refs), **({"plugins": list(self.plugins)} if self.plugins else {}),
            **({"tuning": dict(self.tuning)} if self.tuning else {}),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in values.items() if k in names}
        dataset = fields["dataset"]
        fields["dataset"] = DatasetRef(dataset["name"], dict(dataset.get("params") or {}))
        train = dict(fields["train"])
        if "profile" in train:  # stored before protocols existed: every method shared the dataset's recipe
            profile = train.pop("profile")
            train["protocol"] = profile if profile == "fast" else "shared"
        fields["train"] = TrainConfig.from_dict(train)
        fields["plugins"] = tuple(fields.get("plugins") or ())
        return cls(**fields)

    def label(self) -> str:
        """Short human-readable description."""
        return f"{self.dataset.name} {self.noise} {self.method} seed={self.seed}"


def is_neutral(key: str, value: Any, neutral: dict[str, Any]) -> bool:
    """Whether ``value`` is ``key``'s declared neutral value (``0`` counts as ``0.0``; ``False`` never as ``0``)."""
    if key not in neutral:
        return False
    default = neutral[key]
    if default is None or value is None or isinstance(default, bool) or isinstance(value, bool):
        return value is default
    if isinstance(default, (int, float)) and isinstance(value, (int, float)):
        return value == default
    return type(value) is type(default) and value == default


def legacy_profile_message(profile: Any, where: str) -> str:
    """The error for a grid's old ``[train] profile`` key, naming its replacement."""
    if profile == "paper":
        hint = ('protocol = "shared" (what profile = "paper" ran: one recipe per dataset for every method) '
                'or protocol = "paper" (each method\'s own published recipe)')
    elif profile in ("cpu", "shared", None):
        hint = 'protocol = "shared"'
    else:
        hint = f'protocol = "{profile}"'
    return f"{where}: profile was replaced by protocol; write {hint}"


GRID_KEYS = {"name", "description", "grid", "train", "methods", "datasets", "data", "slurm", "report", "tune",
             "plugins"}
GRID_AXES = {"datasets", "methods", "noise", "seeds"}


@dataclass
class Grid:
    """A parsed grid file."""

    name: str
    datasets: list[str]
    methods: list[str]
    noise: list[str]
    seeds: list[int]
    train: dict[str, Any] = field(default_factory=dict)
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_root: str | None = None
    slurm: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    tune: TuneConfig | None = None  # [tune]: equal tuning budgets on seeds that are not scored
    source: str = "<grid>"
    plugins: list[str] = field(default_factory=list)  # local plugin folders, absolute

    @property
    def size(self) -> int:
        """Number of runs the grid expands to."""
        return len(self.datasets) * len(self.noise) * len(self.methods) * len(self.seeds)


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid file; malformed TOML and unknown keys name file and key."""
    path = Path(path)
    if not path.is_file():
        raise NoisybenchError(f"grid file {str(path)!r} does not exist; pass a path like benchmarks/quick.toml")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                          "save the grid file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the grid file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    return parse_grid(data, source=str(path), default_name=path.stem)


def parse_grid(data: dict[str, Any], source: str = "<grid>", default_name: str = "grid") -> Grid:
    """Validate the structure of a grid dict (see :func:`load_grid`)."""
    if "sweep" in data:
        raise ConfigError(sweep_message(data["sweep"], source))
    _check_keys(data, GRID_KEYS, source, "top level")
    axes = data.get("grid")
    if not isinstance(axes, dict):
        raise ConfigError(f"{source}: missing [grid] table with keys datasets, methods, noise, seeds")
    _check_keys(axes, GRID_AXES, source, "[grid]")
    for key in sorted(GRID_AXES):
        value = axes.get(key)
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{source}: [grid] {key} must be a non-empty list, got {value!r}")
    for key in ("datasets", "methods", "noise"):
        if not all(isinstance(v, str) for v in axes[key]):
            raise ConfigError(f"{source}: [grid] {key} must be a list of strings, got {axes[key]!r}")
    tables = {k: data.get(k, {}) for k in ("train", "methods", "datasets", "data", "slurm", "report", "tune",
                                           "plugins")}
    for key, value in tables.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{key}] must be a table, got {value!r}")
    _check_keys(tables["data"], {"root"}, source, "[data]")
    _check_keys(tables["plugins"], {"paths"}, source, "[plugins]")
    check_grid_table(data, source, default_name)  # names, seeds, repeated entries, sub-tables
    name = data.get("name", default_name)
    return Grid(
        name=name, datasets=list(axes["datasets"]), methods=list(axes["methods"]),
        noise=list(axes["noise"]), seeds=list(axes["seeds"]), train=dict(tables["train"]),
        method_params=dict(tables["methods"]), dataset_params=dict(tables["datasets"]),
        data_root=tables["data"].get("root"), slurm=dict(tables["slurm"]),
        report=dict(tables["report"]), source=source,
        tune=parse_tune(tables["tune"], source, axes["seeds"]) if "tune" in data else None,
        plugins=_plugin_paths(tables["plugins"].get("paths", []), source),
    )


def _plugin_paths(paths: Any, source: str) -> list[str]:
    """``[plugins] paths``: existing folders, relative to the grid file; returned absolute."""
    if not isinstance(paths, list) or not all(isinstance(p, str) and p and "\0" not in p for p in paths):
        raise ConfigError(f"{source}: [plugins] paths must be a list of folder paths, got {paths!r}; "
                          'e.g. paths = ["my_methods/"]')
    base = Path(source).parent if Path(source).is_file() else Path.cwd()
    folders = []
    for entry in paths:
        folder = (base / Path(entry).expanduser()).resolve()
        if not folder.is_dir():
            raise ConfigError(f"{source}: [plugins] paths: {entry!r} is not an existing folder ({folder}); paths "
                              "are relative to the grid file")
        folders.append(str(folder))
    check_distinct(paths, folders, f"{source}: [plugins]", "paths")
    return folders


def sweep_message(table: Any, source: str) -> str:
    """The refusal of a grid's ``[sweep]`` tables, with the ``[tune]`` that replaces them."""
    methods = table if isinstance(table, dict) else {}
    lines = [f"[tune.space.{m}] " + "; ".join(f"{k} = {v!r}" for k, v in values.items())
             for m, values in methods.items() if isinstance(values, dict)]
    example = f" and {'; '.join(lines)}" if lines else ""
    return (f"{source}: [sweep] was replaced by [tune]: a sweep picked its value on the seeds it then scored, "
            f"which biases the result upwards. Write [tune] budget = N and seeds = [...] (seeds that [grid] does not "
            f"score){example}; every method then gets the same budget (see the README, Grid files)")


def _check_keys(table: dict[str, Any], allowed: set[str], source: str, where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"{source}: unknown key {key!r} in {where}.{suggest(key, allowed)} "
                f"Allowed: {', '.join(sorted(allowed))}"
            )
