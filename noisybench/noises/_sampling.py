"""Samplers shared by the families given by a transition matrix (sym, asym, pairflip and their variants).

``exact`` samplers flip exactly round_half_up(rho_c * n_c) samples of each class c; ``-draw``
variants draw every label independently from T.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from noisybench.noise import NoiseContext, NoiseModel, round_half_up


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


def rate_fraction(ctx: NoiseContext) -> Fraction:
    """The spec's rate as the exact decimal fraction it was written as (``0.2`` -> 1/5)."""
    return Fraction(str(ctx.spec.rate))


def dividemix_chosen(ctx: NoiseContext) -> np.ndarray:
    """The DivideMix/SELC convention's noisy samples: the first floor(r N) of a random permutation."""
    n = len(ctx.labels)
    return ctx.rng.permutation(n)[: int(rate_fraction(ctx) * n)]


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
        rates = [Fraction(0) if T[c, c] == 1 else rate_fraction(ctx) for c in range(ctx.num_classes)]
        return sample_exact(ctx.labels, T, rates, ctx.rng)
