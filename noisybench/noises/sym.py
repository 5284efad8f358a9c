"""Symmetric noise: exact (``sym``), per-sample draw (``sym-draw``) and the DivideMix convention (``sym-dividemix``)."""

from __future__ import annotations

import numpy as np

from noisybench.facts import NoiseKind
from noisybench.noise import NoiseContext, NoiseModel
from noisybench.noises._sampling import MatrixNoise, dividemix_chosen
from noisybench.registry import register_noise


def symmetric_matrix(num_classes: int, rate: float) -> np.ndarray:
    """T with 1 - r on the diagonal and r / (C - 1) elsewhere."""
    T = np.full((num_classes, num_classes), rate / (num_classes - 1))
    np.fill_diagonal(T, 1 - rate)
    return T


@register_noise("sym")
class Symmetric(MatrixNoise):
    """Unbiased symmetric noise: exactly r of each class flips to another class."""

    kind = NoiseKind.SYMMETRIC
    display_name = "Sym."
    display_order = 10

    description = "symmetric, exact: a flipped label is always another class; actual rate = r"

    def matrix(self, ctx: NoiseContext) -> np.ndarray:
        return symmetric_matrix(ctx.num_classes, ctx.spec.rate)


@register_noise("sym-draw")
class SymmetricDraw(Symmetric):
    """Symmetric T, every label drawn independently (Co-teaching, unofficial GCE)."""

    sampler = "draw"
    description = "symmetric, per-sample draw from T; actual rate ~ r (binomial)"
    display_name = "Sym. (draw)"
    display_order = 11


@register_noise("sym-dividemix")
class SymmetricDivideMix(NoiseModel):
    """DivideMix/ELR convention: floor(r N) samples get a label uniform over all C classes."""

    kind = NoiseKind.SYMMETRIC
    display_name = "Sym. (DivideMix)"
    display_order = 12

    sampler = "dividemix"
    description = "DivideMix/SELC symmetric: new label uniform over all C; actual rate r(C-1)/C"

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        chosen = dividemix_chosen(ctx)
        noisy = ctx.labels.copy()
        noisy[chosen] = ctx.rng.integers(0, ctx.num_classes, size=len(chosen))
        return noisy
