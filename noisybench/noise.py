"""Label-noise models: the spec, the base class and the realisation every family shares.

A noise spec is a string ``family[:arg]``: ``sym:0.5``, ``asym:0.4``, ``idn:0.3``,
``human:aggre``, ``none``. Every method of a grid sees the same realisation because the random
stream depends only on the dataset, the spec and the seed (:func:`noise_seed`). Each
realisation is summarised with its nominal and actual rate, realised transition counts and a
sha256 of the noisy labels, and stored with every run.

The families are plugins, one module per family or group of related families in
``noisybench/noises/`` (discovered from the folder, like methods and datasets), each declaring its
facts (kind, class map, sampler, printed name). This module holds what they share: the spec and
its canonical form, the :class:`NoiseModel` base class, :func:`realize_noise` and the label-file
reader. A spec's canonical form keeps its rate exactly (the shortest text that reads back as the
same float: ``sym:0.1234567`` stays so, ``sym:-0`` is ``sym:0``), and that text names the run.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from noisybench.errors import ConfigError, UnknownNameError
from noisybench.facts import NoiseKind
from noisybench.registry import NOISES
from noisybench.seeds import stream


def format_rate(rate: float) -> str:
    """The canonical text of a rate: the shortest decimal that reads back as exactly ``rate``.

    Whole numbers lose their ``.0`` (``0`` not ``0.0``), so every rate written with up to six
    significant digits reads as ``%g`` wrote it (``0.2``, ``0.05``, ``1e-05``) and run ids stay put.
    """
    rate = rate + 0.0  # -0.0 -> 0.0
    return str(int(rate)) if rate.is_integer() else repr(rate)


@dataclass(frozen=True)
class NoiseSpec:
    """A parsed noise spec: ``family`` plus a ``rate`` or a string ``arg`` (``human:aggre``)."""

    family: str
    rate: float | None = None
    arg: str | None = None

    def __str__(self) -> str:
        if self.rate is not None:
            return f"{self.family}:{format_rate(self.rate)}"
        return f"{self.family}:{self.arg}" if self.arg else self.family


def parse_noise(text: str) -> NoiseSpec:
    """Parse and validate ``text``; unknown families, bad rates and stray arguments raise with the fix."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"a noise spec must be a string like 'sym:0.2', got {text!r}")
    family, colon, arg = text.strip().partition(":")
    family = family.strip().lower().replace("_", "-")
    arg = arg.strip()
    model = _get_model(family, text)
    if not model.takes_rate:
        if model.needs_arg and not arg:
            raise ConfigError(f"noise {text!r} needs an argument, e.g. '{family}:{model.example}'")
        if not model.needs_arg and (arg or colon):
            raise ConfigError(f"noise {text!r}: family {family!r} takes no argument; write '{family}'")
        return NoiseSpec(family, None, arg or None)
    if not arg:
        raise ConfigError(f"noise {text!r} needs a rate, e.g. '{family}:0.2'")
    try:
        rate = float(arg) + 0.0  # + 0.0: -0 is 0
    except ValueError:
        raise ConfigError(f"noise {text!r}: rate {arg!r} is not a number; write e.g. '{family}:0.2'") from None
    if not (math.isfinite(rate) and 0 <= rate < 1):
        raise ConfigError(f"noise {text!r}: rate {arg} is outside [0, 1); use e.g. '{family}:0.4'")
    return NoiseSpec(family, rate)


def _family_of(text: str) -> tuple[str, str]:
    family, _, arg = str(text).strip().partition(":")
    return family.strip().lower().replace("_", "-"), arg


def _model_or_none(family: str) -> type[NoiseModel] | None:
    try:
        return NOISES.get(family)
    except UnknownNameError:
        return None


def noise_display(text: str) -> str:
    """A noise setting as printed in papers: ``sym:0.5`` -> ``Sym. 50 %``, ``human:aggre`` -> ``Human (aggre)``.

    The printed name is the family's ``display_name``; unparseable specs and families without one
    are returned as given.
    """
    family, arg = _family_of(text)
    model = _model_or_none(family)
    name = getattr(model, "display_name", "") if model is not None else ""
    if not name:
        return str(text)
    if not arg:
        return name
    try:
        rate = float(arg)
    except ValueError:
        return f"{name} ({arg.strip()})"
    return f"{name} {round(rate * 100, 10):.12g} %"


def noise_sort_key(text: str) -> tuple[float, str, float, str]:
    """Natural order of settings: by family (clean, sym, asym, pair, IDN, human, others), then by rate.

    The family's rank is its ``display_order``; families without a printed name come last.
    """
    family, arg = _family_of(text)
    model = _model_or_none(family)
    order = model.display_order if model is not None and model.display_name else math.inf
    try:
        rate = float(arg)
    except ValueError:
        rate = -1.0
    return (order, family, rate, arg)


class _FamilyDisplay(Mapping[str, str]):
    """Family -> printed name of every registered family with one, in report order (read from the plugins)."""

    def _names(self) -> dict[str, str]:
        models = [NOISES.get(name) for name in NOISES.list()]
        return {m.name: m.display_name for m in sorted(models, key=lambda m: (m.display_order, m.name))
                if m.display_name}

    def __getitem__(self, family: str) -> str:
        return self._names()[family]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


#: Printed names of noise families, in the order settings are listed in reports (clean first, then by family).
FAMILY_DISPLAY: Mapping[str, str] = _FamilyDisplay()


def _get_model(family: str, text: str) -> NoiseModel:
    try:
        return NOISES.get(family)()
    except UnknownNameError as exc:
        raise UnknownNameError(f"in noise spec {text!r}: {exc}") from None


@dataclass
class NoiseContext:
    """Everything a noise model may read. ``dataset`` is the plugin object."""

    labels: np.ndarray
    num_classes: int
    spec: NoiseSpec
    rng: np.random.Generator
    dataset: Any = None
    features: Any = None  # callable returning raw features, for instance-dependent noise


@dataclass
class NoiseRealization:
    """A stored noise artifact: the noisy labels and their summary."""

    spec: str
    labels: np.ndarray
    nominal_rate: float | None
    actual_rate: float
    transition_counts: list[list[int]]
    sha256: str
    seed: int
    sampler: str
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (everything but the labels)."""
        return {
            "spec": self.spec, "nominal_rate": self.nominal_rate, "actual_rate": self.actual_rate,
            "sha256": self.sha256, "seed": self.seed, "sampler": self.sampler,
            "num_samples": int(len(self.labels)), "transition_counts": self.transition_counts,
            **self.extra,
        }


class NoiseModel:
    """Base of noise families (one module each in ``noisybench/noises/``). Subclasses implement :meth:`corrupt`."""

    name: ClassVar[str] = ""
    takes_rate: ClassVar[bool] = True
    needs_arg: ClassVar[bool] = False
    example: ClassVar[str] = "0.2"
    sampler: ClassVar[str] = "exact"
    description: ClassVar[str] = ""
    kind: ClassVar[NoiseKind] = NoiseKind.SYMMETRIC
    #: For class-conditional noise, the class map it follows: ``"dataset"`` (the dataset's own
    #: asymmetric map, what papers call "asym"), ``"superclass"`` or ``"pair"`` (i -> i + 1).
    class_map: ClassVar[str] = ""
    #: The family's printed name in reports (``Sym.``); ``display_order`` ranks families in tables.
    display_name: ClassVar[str] = ""
    display_order: ClassVar[int] = 1000

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        """Return the noisy labels (int64, same length as ``ctx.labels``)."""
        raise NotImplementedError

    @classmethod
    def check(cls, spec: NoiseSpec, dataset_cls: Any) -> None:
        """Refuse, before anything runs, a spec that cannot apply to ``dataset_cls``."""

    @classmethod
    def input_files(cls, spec: NoiseSpec) -> list[Path]:
        """Files the realisation reads (a label file); their sha256 goes into the run's fingerprint."""
        return []


def noise_seed(dataset_id: str, spec: NoiseSpec, seed: int) -> np.random.SeedSequence:
    """The seed sequence of one realisation: a pure function of dataset, spec and seed."""
    return stream("noise", dataset_id, spec, seed)


def realize_noise(
    spec: NoiseSpec | str, labels: np.ndarray, num_classes: int, seed: int,
    dataset: Any = None, dataset_id: str = "", features: Any = None,
) -> NoiseRealization:
    """Apply ``spec`` to ``labels`` with the stream of (``dataset_id``, ``spec``, ``seed``)."""
    spec = parse_noise(spec) if isinstance(spec, str) else spec
    model = NOISES.get(spec.family)()
    rng = np.random.default_rng(noise_seed(dataset_id, spec, seed))
    labels = np.asarray(labels, dtype=np.int64)
    ctx = NoiseContext(labels, num_classes, spec, rng, dataset, features)
    noisy = np.asarray(model.corrupt(ctx), dtype=np.int64)
    if noisy.shape != labels.shape:
        raise ConfigError(
            f"noise {spec}: {len(noisy)} noisy labels for {len(labels)} samples; "
            "the label set must match the training set"
        )
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, noisy), 1)
    return NoiseRealization(
        spec=str(spec), labels=noisy, nominal_rate=spec.rate,
        actual_rate=float(np.mean(noisy != labels)) if len(labels) else 0.0,
        transition_counts=counts.tolist(),
        extra={"transition_matrix": np.round(counts / np.maximum(counts.sum(1, keepdims=True), 1), 6).tolist(),
               "family": spec.family},
        sha256=hashlib.sha256(noisy.astype("<i8").tobytes()).hexdigest(),
        seed=seed, sampler=model.sampler,
    )


def round_half_up(x: Fraction) -> int:
    """Round a non-negative fraction to the nearest integer, halves up."""
    return int(x + Fraction(1, 2))


def read_label_file(path: Path, expected: int, num_classes: int) -> np.ndarray:
    """Read one integer label per sample from ``.npy`` or text; refuse a wrong length."""
    if not path.is_file():
        raise ConfigError(f"label file {str(path)!r} does not exist; give an existing .npy/.txt/.csv path")
    try:
        if path.suffix == ".npy":
            raw = np.asarray(np.load(path, allow_pickle=False)).reshape(-1)
        else:
            raw = np.loadtxt(path, dtype=np.float64, delimiter="," if path.suffix == ".csv" else None, ndmin=1)
    except (ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"label file {str(path)!r} cannot be read ({exc}); it must hold one integer "
                          "label per training sample") from None
    if raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.all(np.isfinite(raw))
                                          and np.all(raw == np.round(raw))):
        raise ConfigError(f"label file {str(path)!r} holds non-integer labels ({raw.dtype}); "
                          "give one integer class index per training sample")
    labels = raw.astype(np.int64)
    if len(labels) != expected:
        raise ConfigError(
            f"label file {str(path)!r} has {len(labels)} labels but the training set has "
            f"{expected} samples; the file must hold one label per training sample, in order"
        )
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= num_classes:
        raise ConfigError(f"label file {str(path)!r} has labels outside 0..{num_classes - 1}")
    return labels
