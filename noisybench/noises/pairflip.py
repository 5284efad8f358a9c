"""Pair-flip noise: class i becomes i + 1 (mod C), exact (``pairflip``) or per-sample draw (``pairflip-draw``)."""

from __future__ import annotations

import numpy as np

from noisybench.facts import NoiseKind
from noisybench.noise import NoiseContext
from noisybench.noises._sampling import MatrixNoise
from noisybench.registry import register_noise


def pairflip_matrix(num_classes: int, rate: float) -> np.ndarray:
    """T with 1 - r on the diagonal and r on (i, i + 1 mod C)."""
    T = np.eye(num_classes) * (1 - rate)
    for i in range(num_classes):
        T[i, (i + 1) % num_classes] += rate
    return T


@register_noise("pairflip")
class PairFlip(MatrixNoise):
    """Pair-flip: exactly r of class i becomes i + 1 (mod C)."""

    kind = NoiseKind.CLASS_CONDITIONAL
    display_name = "Pair"
    display_order = 30

    description = "pair-flip, exact: r of class i becomes (i + 1) mod C"
    class_map = "pair"

    def matrix(self, ctx: NoiseContext) -> np.ndarray:
        return pairflip_matrix(ctx.num_classes, ctx.spec.rate)


@register_noise("pairflip-draw")
class PairFlipDraw(PairFlip):
    """Pair-flip T, per-sample draw (Co-teaching ``noisify_pairflip``)."""

    sampler = "draw"
    description = "pair-flip, per-sample draw from T"
    display_name = "Pair (draw)"
    display_order = 31
