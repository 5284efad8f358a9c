"""Class-conditional noise along the dataset's class map: exact (``asym``), within true CIFAR-100 super-classes
(``asym-superclass``), per-sample draw (``asym-draw``) and the DivideMix convention (``asym-dividemix``)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from noisybench.errors import ConfigError
from noisybench.facts import NoiseKind
from noisybench.noise import NoiseContext, NoiseModel, NoiseSpec
from noisybench.noises._sampling import MatrixNoise, dividemix_chosen
from noisybench.registry import register_noise


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


@register_noise("asym")
class Asymmetric(MatrixNoise):
    """Class-dependent noise with the dataset's class map, exact per source class."""

    kind = NoiseKind.CLASS_CONDITIONAL
    display_name = "Asym."
    display_order = 20

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
    """CIFAR-100 within true super-classes: f_j -> f_(j+1 mod 5) of each coarse class."""

    description = "asymmetric within true super-classes (CIFAR-100), exact; distinct from asym's block-of-5"
    variant = "superclass"
    class_map = "superclass"
    display_name = "Asym. (superclass)"
    display_order = 21


@register_noise("asym-draw")
class AsymmetricDraw(Asymmetric):
    """The dataset's class map, every label drawn independently (loss-correction code)."""

    sampler = "draw"
    description = "asymmetric, per-sample draw from T"
    display_name = "Asym. (draw)"
    display_order = 22


@register_noise("asym-dividemix")
class AsymmetricDivideMix(NoiseModel):
    """DivideMix/SELC: floor(r N) samples drawn from all classes, then mapped."""

    kind = NoiseKind.CLASS_CONDITIONAL
    display_name = "Asym. (DivideMix)"
    display_order = 23

    sampler = "dividemix"
    class_map = "dataset"
    description = "DivideMix asymmetric: floor(rN) samples of any class, mapped; about r/2 wrong"
    check = Asymmetric.check  # type: ignore[assignment]

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        class_map = dataset_class_map(ctx, "default")
        chosen = dividemix_chosen(ctx)
        noisy = ctx.labels.copy()
        noisy[chosen] = [class_map.get(int(y), int(y)) for y in ctx.labels[chosen]]
        return noisy
