"""Label-noise models: pure functions of (clean labels, noise spec, seed).

A noise spec is a string ``family[:arg]``: ``sym:0.5``, ``asym:0.4``, ``idn:0.3``,
``human:aggre``, ``none``. Every method of a grid sees the same realisation because the random
stream depends only on the dataset, the spec and the seed (:func:`noise_seed`). Each
realisation is summarised with its nominal and actual rate, realised transition counts and a
sha256 of the noisy labels, and stored with every run.

Families follow ``methods.md`` §8: ``exact`` samplers flip exactly round_half_up(rho_c * n_c)
samples of each class c; ``-draw`` variants draw every label independently from T.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from noisybench.errors import ConfigError, UnknownNameError, suggest
from noisybench.facts import NoiseKind
from noisybench.registry import NOISES, register_noise
from noisybench.seeds import stream


@dataclass(frozen=True)
class NoiseSpec:
    """A parsed noise spec: ``family`` plus a ``rate`` or a string ``arg`` (``human:aggre``)."""

    family: str
    rate: float | None = None
    arg: str | None = None

    def __str__(self) -> str:
        if self.rate is not None:
            return f"{self.family}:{self.rate:g}"
        return f"{self.family}:{self.arg}" if self.arg else self.family


def parse_noise(text: str) -> NoiseSpec:
    """Parse and validate ``text``; unknown families and bad rates raise with the fix."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"a noise spec must be a string like 'sym:0.2', got {text!r}")
    family, _, arg = text.strip().partition(":")
    family = family.strip().lower().replace("_", "-")
    model = _get_model(family, text)
    if not model.takes_rate:
        if model.needs_arg and not arg:
            raise ConfigError(f"noise {text!r} needs an argument, e.g. '{family}:{model.example}'")
        return NoiseSpec(family, None, arg.strip() or None)
    if not arg:
        raise ConfigError(f"noise {text!r} needs a rate, e.g. '{family}:0.2'")
    try:
        rate = float(arg)
    except ValueError:
        raise ConfigError(f"noise {text!r}: rate {arg!r} is not a number; write e.g. '{family}:0.2'") from None
    if not 0 <= rate < 1:
        raise ConfigError(f"noise {text!r}: rate {rate:g} is outside [0, 1); use e.g. '{family}:0.4'")
    return NoiseSpec(family, rate)


#: Printed names of noise families, in the order settings are listed in reports (clean first, then by family).
FAMILY_DISPLAY: dict[str, str] = {
    "none": "Clean", "sym": "Sym.", "sym-draw": "Sym. (draw)", "sym-dividemix": "Sym. (DivideMix)",
    "asym": "Asym.", "asym-superclass": "Asym. (superclass)", "asym-draw": "Asym. (draw)",
    "asym-dividemix": "Asym. (DivideMix)", "pairflip": "Pair", "pairflip-draw": "Pair (draw)", "idn": "IDN",
    "human": "Human",
}


def noise_display(text: str) -> str:
    """A noise setting as printed in papers: ``sym:0.5`` -> ``Sym. 50 %``, ``human:aggre`` -> ``Human (aggre)``.

    Unparseable or unknown specs are returned as given.
    """
    family, _, arg = str(text).strip().partition(":")
    name = FAMILY_DISPLAY.get(family.strip().lower().replace("_", "-"))
    if name is None:
        return str(text)
    if not arg:
        return name
    try:
        rate = float(arg)
    except ValueError:
        return f"{name} ({arg.strip()})"
    return f"{name} {rate * 100:g} %"


def noise_sort_key(text: str) -> tuple[int, str, float, str]:
    """Natural order of settings: by family (clean, sym, asym, pair, IDN, human, others), then by rate."""
    family, _, arg = str(text).strip().partition(":")
    family = family.strip().lower().replace("_", "-")
    order = list(FAMILY_DISPLAY)
    try:
        rate = float(arg)
    except ValueError:
        rate = -1.0
    return (order.index(family) if family in order else len(order), family, rate, arg)


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
    """Base of noise families. Subclasses implement :meth:`corrupt`."""

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


def sample_exact(labels: np.ndarray, T: np.ndarray, rates: list[Fraction], rng: np.random.Generator) -> np.ndarray:
    """Flip exactly round_half_up(rates[c] * n_c) samples of each class c.

    The flipped samples are chosen uniformly without replacement; each new label is drawn from
    row c of ``T`` with the diagonal removed and renormalised. Labels flip once (no chaining).
    """
    noisy = labels.copy()
    for c in range(T.shape[0]):
        idx = np.flatnonzero(labels == c)
        n_flip = round_half_up(rates[c] * len(idx))
        off = T[c].astype(np.float64).copy()
        off[c] = 0.0
        if n_flip == 0 or off.sum() <= 0:
            continue
        chosen = rng.choice(idx, size=n_flip, replace=False)
        noisy[chosen] = rng.choice(T.shape[0], size=n_flip, p=off / off.sum())
    return noisy


def sample_draw(labels: np.ndarray, T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw every label independently from row ``T[y]`` (the Co-teaching sampler)."""
    cum = np.cumsum(T, axis=1)
    u = rng.random(len(labels))
    noisy = (u[:, None] > cum[labels]).sum(axis=1)
    return np.minimum(noisy, T.shape[0] - 1).astype(np.int64)


def _rate(ctx: NoiseContext) -> Fraction:
    return Fraction(str(ctx.spec.rate))


def symmetric_matrix(num_classes: int, rate: float) -> np.ndarray:
    """T with 1 - r on the diagonal and r / (C - 1) elsewhere."""
    T = np.full((num_classes, num_classes), rate / (num_classes - 1))
    np.fill_diagonal(T, 1 - rate)
    return T


def pairflip_matrix(num_classes: int, rate: float) -> np.ndarray:
    """T with 1 - r on the diagonal and r on (i, i + 1 mod C)."""
    T = np.eye(num_classes) * (1 - rate)
    for i in range(num_classes):
        T[i, (i + 1) % num_classes] += rate
    return T


def asym_matrix(num_classes: int, rate: float, class_map: dict[int, int]) -> np.ndarray:
    """T with T_cc = 1 - r and T_c,map(c) = r for every mapped class c."""
    T = np.eye(num_classes)
    for src, dst in class_map.items():
        if src != dst:
            T[src, src], T[src, dst] = 1 - rate, rate
    return T


def dataset_class_map(ctx: NoiseContext, variant: str) -> dict[int, int]:
    """The dataset's asymmetric class map ``variant``; a clear error when it has none."""
    maps = getattr(ctx.dataset, "asym_maps", {}) or {}
    if variant not in maps:
        name = getattr(ctx.dataset, "name", "this dataset")
        family = "asym" if variant == "default" else f"asym-{variant}"
        have = ", ".join("asym" if k == "default" else f"asym-{k}" for k in maps) or "none"
        raise ConfigError(
            f"noise {family!r} needs a class map, and dataset {name!r} has none for it "
            f"(its asymmetric variants: {have}). Use 'sym', 'pairflip' or 'idn' on this dataset."
        )
    return {int(k): int(v) for k, v in maps[variant].items()}


@register_noise("none")
class NoNoise(NoiseModel):
    """Keep the labels (a clean-label reference run)."""

    kind = NoiseKind.NONE

    takes_rate = False
    description = "no noise: labels unchanged"

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        return ctx.labels.copy()


class MatrixNoise(NoiseModel):
    """A family given by a transition matrix T, sampled exactly (default) or per sample (``draw``).

    The exact sampler flips round_half_up(r * n_c) samples of every class c that T moves
    (T_cc < 1) and none of the others.
    """

    def matrix(self, ctx: NoiseContext) -> np.ndarray:
        """The family's T for ``ctx`` (C x C, rows sum to 1)."""
        raise NotImplementedError

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        T = self.matrix(ctx)
        if self.sampler == "draw":
            return sample_draw(ctx.labels, T, ctx.rng)
        rates = [Fraction(0) if T[c, c] == 1 else _rate(ctx) for c in range(ctx.num_classes)]
        return sample_exact(ctx.labels, T, rates, ctx.rng)


@register_noise("sym")
class Symmetric(MatrixNoise):
    """Unbiased symmetric noise: exactly r of each class flips to another class."""

    kind = NoiseKind.SYMMETRIC

    description = "symmetric, exact: a flipped label is always another class; actual rate = r"

    def matrix(self, ctx: NoiseContext) -> np.ndarray:
        return symmetric_matrix(ctx.num_classes, ctx.spec.rate)


@register_noise("sym-draw")
class SymmetricDraw(Symmetric):
    """Symmetric T, every label drawn independently (Co-teaching, unofficial GCE)."""

    sampler = "draw"
    description = "symmetric, per-sample draw from T; actual rate ~ r (binomial)"


@register_noise("sym-dividemix")
class SymmetricDivideMix(NoiseModel):
    """DivideMix/ELR convention: floor(r N) samples get a label uniform over all C classes."""

    kind = NoiseKind.SYMMETRIC

    sampler = "dividemix"
    description = "DivideMix/SELC symmetric: new label uniform over all C; actual rate r(C-1)/C"

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        n = len(ctx.labels)
        chosen = ctx.rng.permutation(n)[: int(_rate(ctx) * n)]
        noisy = ctx.labels.copy()
        noisy[chosen] = ctx.rng.integers(0, ctx.num_classes, size=len(chosen))
        return noisy


@register_noise("asym")
class Asymmetric(MatrixNoise):
    """Class-dependent noise with the dataset's class map, exact per source class."""

    kind = NoiseKind.CLASS_CONDITIONAL

    description = "asymmetric, exact: rate r of each mapped class goes to its target class"
    variant: ClassVar[str] = "default"
    class_map = "dataset"

    @classmethod
    def check(cls, spec: NoiseSpec, dataset_cls: Any) -> None:
        dataset_class_map(NoiseContext(np.zeros(0, np.int64), 0, spec, None, dataset_cls), cls.variant)

    def matrix(self, ctx: NoiseContext) -> np.ndarray:
        return asym_matrix(ctx.num_classes, ctx.spec.rate, dataset_class_map(ctx, self.variant))


@register_noise("asym-superclass")
class AsymmetricSuperclass(Asymmetric):
    """CIFAR-100 within true super-classes: f_j -> f_(j+1 mod 5) of each coarse class (methods.md §8.3)."""

    description = "asymmetric within true super-classes (CIFAR-100), exact; distinct from asym's block-of-5"
    variant = "superclass"
    class_map = "superclass"


@register_noise("asym-draw")
class AsymmetricDraw(Asymmetric):
    """The dataset's class map, every label drawn independently (loss-correction code)."""

    sampler = "draw"
    description = "asymmetric, per-sample draw from T"


@register_noise("asym-dividemix")
class AsymmetricDivideMix(NoiseModel):
    """DivideMix/SELC: floor(r N) samples drawn from all classes, then mapped."""

    kind = NoiseKind.CLASS_CONDITIONAL

    sampler = "dividemix"
    class_map = "dataset"
    description = "DivideMix asymmetric: floor(rN) samples of any class, mapped; about r/2 wrong"
    check = Asymmetric.check  # type: ignore[assignment]

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        class_map = dataset_class_map(ctx, "default")
        n = len(ctx.labels)
        chosen = ctx.rng.permutation(n)[: int(_rate(ctx) * n)]
        noisy = ctx.labels.copy()
        noisy[chosen] = [class_map.get(int(y), int(y)) for y in ctx.labels[chosen]]
        return noisy


@register_noise("pairflip")
class PairFlip(MatrixNoise):
    """Pair-flip: exactly r of class i becomes i + 1 (mod C)."""

    kind = NoiseKind.CLASS_CONDITIONAL

    description = "pair-flip, exact: r of class i becomes (i + 1) mod C"
    class_map = "pair"

    def matrix(self, ctx: NoiseContext) -> np.ndarray:
        return pairflip_matrix(ctx.num_classes, ctx.spec.rate)


@register_noise("pairflip-draw")
class PairFlipDraw(PairFlip):
    """Pair-flip T, per-sample draw (Co-teaching ``noisify_pairflip``)."""

    sampler = "draw"
    description = "pair-flip, per-sample draw from T"


@register_noise("idn")
class InstanceDependent(NoiseModel):
    """Part-dependent instance noise (Xia et al., NeurIPS 2020; ``methods.md`` §8.5).

    Per-sample flip rates q_i ~ TruncNormal(r, 0.1, [0, 1]); a random projection W[y] of the
    raw flattened input scores the wrong classes; the label is drawn from
    (1 - q_i on the true class, q_i * softmax(scores) on the others).
    """

    kind = NoiseKind.INSTANCE_DEPENDENT

    sampler = "idn"
    description = "instance-dependent (part-dependent, Xia et al. 2020) on raw inputs"
    sigma: ClassVar[float] = 0.1

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        from scipy.stats import truncnorm

        if ctx.features is None:
            raise ConfigError("noise 'idn' needs the dataset's raw inputs; none were given")
        x = np.asarray(ctx.features() if callable(ctx.features) else ctx.features, dtype=np.float64)
        n, s, c = len(ctx.labels), x.shape[1], ctx.num_classes
        r = ctx.spec.rate
        a, b = (0 - r) / self.sigma, (1 - r) / self.sigma
        q = truncnorm.rvs(a, b, loc=r, scale=self.sigma, size=n, random_state=ctx.rng)
        W = ctx.rng.standard_normal((c, s, c))
        noisy = np.empty(n, dtype=np.int64)
        for cls in range(c):  # one projection per true class, vectorised within the class
            idx = np.flatnonzero(ctx.labels == cls)
            if len(idx) == 0:
                continue
            scores = x[idx] @ W[cls]
            scores[:, cls] = -np.inf
            scores -= scores.max(axis=1, keepdims=True)
            probs = np.exp(scores)
            probs = probs / probs.sum(axis=1, keepdims=True) * q[idx, None]
            probs[:, cls] = 1 - q[idx]
            cum = np.cumsum(probs, axis=1)
            u = ctx.rng.random(len(idx))[:, None] * cum[:, -1:]
            noisy[idx] = np.minimum((u > cum).sum(axis=1), c - 1)
        return noisy


@register_noise("human")
class Human(NoiseModel):
    """Human labels: a label set the dataset ships (``human:aggre``) or a file (``human:x.npy``)."""

    kind = NoiseKind.HUMAN

    takes_rate = False
    needs_arg = True
    example = "aggre"
    sampler = "human"
    description = "human labels: a dataset's named label set, or a .npy/.txt/.csv label file"

    @classmethod
    def input_files(cls, spec: NoiseSpec) -> list[Path]:
        if Path(spec.arg or "").suffix in {".npy", ".txt", ".csv"}:
            return [Path(spec.arg or "").expanduser()]
        return []

    @classmethod
    def check(cls, spec: NoiseSpec, dataset_cls: Any) -> None:
        if Path(spec.arg or "").suffix in {".npy", ".txt", ".csv"}:
            return
        sets = tuple(getattr(dataset_cls, "human_label_sets", ()))
        if spec.arg not in sets:
            name = getattr(dataset_cls, "name", "this dataset")
            raise ConfigError(
                f"noise 'human:{spec.arg}': dataset {name!r} has no human label set {spec.arg!r}."
                f"{suggest(spec.arg or '', sets)} Its sets: {', '.join(sets) or 'none'}; "
                "or give a label file, e.g. human:labels.npy"
            )

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        arg = ctx.spec.arg or ""
        path = Path(arg).expanduser()
        if path.suffix in {".npy", ".txt", ".csv"}:
            return read_label_file(path, len(ctx.labels), ctx.num_classes)
        if ctx.dataset is None:
            raise ConfigError(f"noise 'human:{arg}' needs a dataset with human label sets")
        return np.asarray(ctx.dataset.human_labels(arg), dtype=np.int64)


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
