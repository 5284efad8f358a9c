"""``asym-pairswap5``: in every block of five consecutive classes, two classes chosen at random exchange their
labels with probability r, every label drawn independently.

This is the CIFAR-100 "asymmetric" noise of SCE's official Keras code (``datasets.py``:
``build_for_cifar100`` and ``multiclass_noisify``, YisenWang/symmetric_cross_entropy_for_noisy_labels) and of
SOP (``data_loader/cifar100.py``, shengliu66/SOP): a per-block transition matrix with 1 - r on the two chosen
classes' diagonal and r between them, identity elsewhere. The blocks are consecutive class ids (CIFAR-100's
alphabetical fine labels), not super-classes. The official code draws the pairs from numpy's global generator
seeded once (123) and the labels with ``RandomState(0)``, so every run there sees one realisation; here the pairs
and the labels come from the run's noise stream, like every other noise model (a function of dataset, spec and
seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from noisybench.errors import ConfigError
from noisybench.facts import NoiseKind
from noisybench.noise import NoiseContext, NoiseModel, NoiseSpec
from noisybench.noises._sampling import sample_draw
from noisybench.registry import register_noise

#: Classes per block.
BLOCK = 5


def block_pairswap_matrix(num_classes: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """T: in each block of :data:`BLOCK` classes two distinct random classes a, b get T_aa = T_bb = 1 - r and
    T_ab = T_ba = r; every other row is the identity."""
    T = np.eye(num_classes)
    for start in range(0, num_classes, BLOCK):
        a, b = start + rng.choice(BLOCK, size=2, replace=False)
        T[a, a] = T[b, b] = 1.0 - rate
        T[a, b] = T[b, a] = rate
    return T


@register_noise("asym-pairswap5")
class BlockPairSwap(NoiseModel):
    """A random pair of classes swapped with probability r inside every block of five (SCE, SOP on CIFAR-100)."""

    kind = NoiseKind.CLASS_CONDITIONAL
    display_name = "Pair swap (blocks of 5)"
    display_order = 35
    class_map = "block-pairswap"
    sampler = "draw"
    example = "0.4"
    description = "in every block of 5 classes, a random pair swaps with probability r (per-sample draw)"

    @classmethod
    def check(cls, spec: NoiseSpec, dataset_cls: Any) -> None:
        classes = int(getattr(dataset_cls, "num_classes", 0) or 0)
        if classes and classes % BLOCK:
            raise ConfigError(f"noise 'asym-pairswap5' needs a number of classes divisible by {BLOCK}; dataset "
                              f"{getattr(dataset_cls, 'name', '?')!r} has {classes}")
        if spec.rate is not None and not 0 <= spec.rate <= 1:
            raise ConfigError(f"noise 'asym-pairswap5': the rate must be in [0, 1], got {spec.rate}")

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        if ctx.num_classes % BLOCK:
            raise ConfigError(f"noise 'asym-pairswap5' needs a number of classes divisible by {BLOCK}, "
                              f"got {ctx.num_classes}")
        return sample_draw(ctx.labels, block_pairswap_matrix(ctx.num_classes, ctx.spec.rate, ctx.rng), ctx.rng)
