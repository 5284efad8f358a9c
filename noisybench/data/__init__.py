"""The dataset plugin contract and the split every method shares.

A dataset plugin (one file in ``datasets/``) subclasses :class:`Dataset`, declares its classes,
default architecture and training recipes, and implements :meth:`Dataset.load`. The suite then
applies the noise model and carves the noisy validation split the same way for every method
(:func:`noisybench.data.prepare.prepare_data`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from noisybench.errors import ConfigError
from noisybench.validate import check_like_defaults


@dataclass
class DataSplits:
    """What a dataset plugin returns: arrays in memory, labels as int64.

    ``y_train`` holds the labels that synthetic noise starts from: the clean labels where they
    are known, the given (already noisy) labels for real-noise datasets (``clean_known`` false).
    Datasets too large for memory give a :class:`noisybench.data.streaming.ImageList` in place of a
    ``x_*`` tensor; the trainer then streams it through DataLoader workers.
    ``extra_test`` holds further evaluation sets, scored every epoch as ``<name>_acc``.
    """

    x_train: torch.Tensor
    y_train: np.ndarray
    x_test: torch.Tensor
    y_test: np.ndarray
    clean_known: bool = True
    extra_test: dict[str, tuple[torch.Tensor, np.ndarray]] = field(default_factory=dict)


#: The name of every dataset's default augmentation (:meth:`Dataset.augment`; ``augment = true``).
DEFAULT_POLICY = "weak"


@dataclass(frozen=True)
class AugmentPolicy:
    """A named augmentation policy of a dataset: how one random view of a batch is made.

    ``stored(dataset, x, generator)`` turns a stored-format batch into an augmented one (it may return
    floats on the stored scale, e.g. interpolated pixels in [0, 255]), before :meth:`Dataset.preprocess`;
    ``network(x, generator)``, if given, acts on the network input after it (Cutout on normalised images).
    Both draw every random number from ``generator``. ``source`` is the provenance tag of the policy
    (``paper``, ``paper-default``: a paper's or its official code's policy; ``suite``: ours) and
    ``description`` says what it does and where it comes from.
    """

    description: str
    source: str
    stored: Callable[[Any, Any, Any], Any]
    network: Callable[[Any, Any], Any] | None = None


class Dataset:
    """Base class of dataset plugins (benchopt-style: small contract, one file each).

    Class attributes
    ----------------
    name : registry name, set by ``@register_dataset``.
    family : the benchmark family whose published recipes apply (:mod:`noisybench.facts`; "" for none).
    base_family : for a re-labelled benchmark, the family whose images it shares (CIFAR-10N: CIFAR-10).
    display_name : name printed in reports and figures (``CIFAR-10``); the registry name when empty.
    num_classes : number of classes.
    default_arch : registry name of the default architecture.
    recipes : named training recipes (dicts of :class:`noisybench.config.TrainConfig` fields).
        ``"shared"`` is required: the one recipe every method uses under ``protocol = "shared"``
        (the default) and the fallback of ``protocol = "paper"`` where a method has no published
        recipe. Further names (``"fast"``) are other shared recipes, never paper ones.
    asym_maps : class maps for asymmetric noise: ``{"default": {src: dst}}``; ``asym`` uses
        ``"default"``, ``asym-<variant>`` uses ``<variant>``.
    val_fraction : share of the training set held out (stratified) as noisy validation.
    human_label_sets : names accepted by ``human:<name>`` (served by :meth:`human_labels`).
    report_top5 : also record top-5 test accuracy (WebVision).
    params : constructor parameters and their defaults (part of the run id).
    augment_policies : named augmentation policies (:class:`AugmentPolicy`) besides ``"weak"``, which is
        always :meth:`augment`; a recipe's ``augment`` and ``ctx.augment(raw, policy=...)`` name them.
    can_skip_normalization : whether ``normalize = false`` is meaningful (:meth:`preprocess` takes
        ``normalize=False``: images scaled to [0, 1] without the per-channel normalisation).
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    base_family: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    num_classes: ClassVar[int] = 0
    default_arch: ClassVar[str] = "mlp"
    recipes: ClassVar[dict[str, dict[str, Any]]] = {}
    asym_maps: ClassVar[dict[str, dict[int, int]]] = {}
    val_fraction: ClassVar[float] = 0.1
    params: ClassVar[dict[str, Any]] = {}
    human_label_sets: ClassVar[tuple[str, ...]] = ()
    report_top5: ClassVar[bool] = False
    augment_policies: ClassVar[dict[str, AugmentPolicy]] = {}
    can_skip_normalization: ClassVar[bool] = False

    def __init__(self, root: str | Path | None = None, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ConfigError(
                f"dataset {self.name!r} has no parameter(s) {', '.join(unknown)}; "
                f"its parameters are: {', '.join(sorted(self.params)) or 'none'}"
            )
        for key, value in params.items():
            check_like_defaults(key, value, [self.params[key]], f"[datasets.{self.name}]")
        self.root = Path(root).expanduser() if root else None
        self.config = {**self.params, **params}

    def load(self) -> DataSplits:
        """Read or generate the data. Called once per process per configuration."""
        raise NotImplementedError

    def check_ready(self) -> None:
        """Raise :class:`~noisybench.errors.DataError` (with the expected layout) when files that
        :meth:`load` needs are missing. Cheap: existence checks only, run before a grid starts."""

    def input_files(self) -> list[Path]:
        """The files :meth:`load` reads (data and label files; empty for generated data). Their
        sha256 goes into every run's fingerprint, so a replaced file makes the runs stale."""
        return []

    def train_class_counts(self) -> list[int] | None:
        """Training samples per class, when known without loading the data (default None: unknown).

        ``noisybench plan`` then refuses a ``val_fraction`` whose split would leave the training or the
        validation set empty; otherwise the run refuses it when it starts (:func:`split_problem`).
        """
        return None

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return a randomly augmented copy of the stored-format batch ``x`` (default: unchanged)."""
        return x

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Turn a stored-format batch (e.g. uint8 images) into network input (default: as is).

        Applied after :meth:`augment` to training batches and to every evaluation batch. Datasets with
        ``can_skip_normalization`` also take ``normalize=False`` (the recipe's ``normalize = false``).
        """
        return x

    @classmethod
    def policy_names(cls) -> list[str]:
        """Names of the augmentation policies a recipe may choose: ``"weak"`` (the default), then the declared ones."""
        return [DEFAULT_POLICY, *(n for n in cls.augment_policies if n != DEFAULT_POLICY)]

    def policy(self, name: str) -> AugmentPolicy:
        """The policy ``name`` (``"weak"`` is :meth:`augment`); unknown names raise, listing the choices."""
        if name in self.augment_policies:
            return self.augment_policies[name]
        if name == DEFAULT_POLICY:
            return AugmentPolicy("the dataset's default augmentation", "suite",
                                 lambda ds, x, g: ds.augment(x, g))
        raise ConfigError(f"dataset {self.name!r} has no augmentation policy {name!r}; its policies: "
                          f"{', '.join(self.policy_names())}")

    def epoch_indices(self, y_noisy: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray | None:
        """Training indices to use in ``epoch`` (default ``None``: all of them).

        Datasets that train on a fresh subset per epoch (Clothing1M's class-balanced draw)
        override this; ``rng`` is seeded from (run seed, epoch).
        """
        return None

    def human_labels(self, name: str) -> np.ndarray:
        """Return the human label set ``name`` (real-noise datasets override this)."""
        raise ConfigError(
            f"dataset {self.name!r} has no human label sets; `human:{name}` needs a dataset "
            "that ships them (cifar10n, cifar100n) or a label file path, e.g. human:labels.npy"
        )

    def noise_features(self, splits: DataSplits) -> np.ndarray:
        """Flattened raw training inputs for instance-dependent noise."""
        return splits.x_train.reshape(len(splits.x_train), -1).double().numpy()

    def cache_dir(self) -> Path:
        """Where generated data is cached (``$NOISYBENCH_CACHE`` or ``~/.cache/noisybench``)."""
        from noisybench.envvars import get

        path = Path(get("NOISYBENCH_CACHE")) / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def describe(self) -> dict[str, Any]:
        """Parameters that identify this dataset in a run's config."""
        return {"name": self.name, "params": dict(sorted(self.config.items()))}


def create_dataset(name: str, root: str | Path | None = None, **params: Any) -> Dataset:
    """Instantiate the registered dataset ``name``."""
    from noisybench.registry import DATASETS

    return DATASETS.get(name)(root=root, **params)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, root: str | None, params_json: str) -> tuple[Dataset, DataSplits]:
    dataset = create_dataset(name, root, **json.loads(params_json))
    return dataset, dataset.load()


def load_dataset(
    name: str, root: str | Path | None = None, **params: Any
) -> tuple[Dataset, DataSplits]:
    """Return the dataset object and its splits, cached per process (workers run many runs)."""
    key = json.dumps(params, sort_keys=True)
    return _load_cached(name, str(root) if root else None, key)


def split_problem(counts: Sequence[int], fraction: float) -> str:
    """Why :func:`stratified_holdout` of ``fraction`` over classes of ``counts`` samples leaves the training set, or
    (``fraction`` > 0) the validation set, empty; "" when both keep samples."""
    held = [int(round(fraction * n)) for n in counts]
    total, largest = int(sum(counts)), int(max(counts, default=0))
    if total and sum(held) == total:
        return (f"val_fraction = {fraction:g} holds out all {total} training samples ({len(counts)} classes): none "
                "is left to train on; lower val_fraction")
    if fraction > 0 and total and sum(held) == 0:
        return (f"val_fraction = {fraction:g} holds out no sample: {total} training samples in {len(counts)} "
                f"classes, at most {largest} per class, and round({fraction:g} x {largest}) = 0; raise val_fraction "
                f"above {0.5 / largest:.3g}, or set it to 0 to train without a validation split (the val metric is "
                "then empty and reports use last)")
    return ""


def stratified_holdout(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, holdout), holding out ``fraction`` of every label's samples.

    Each class holds out ``round(fraction * n_c)`` samples, so the split is stratified by
    ``labels`` (the *observed* labels when used for the noisy validation split).
    """
    if not 0 <= fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {fraction}")
    holdout = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_out = int(round(fraction * len(idx)))
        holdout.append(rng.permutation(idx)[:n_out])
    out = np.sort(np.concatenate(holdout)) if holdout else np.array([], dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[out] = False
    return np.flatnonzero(mask), out
