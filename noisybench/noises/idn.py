"""Instance-dependent noise (``idn``): part-dependent, on the raw inputs (Xia et al., NeurIPS 2020)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from noisybench.errors import ConfigError
from noisybench.facts import NoiseKind
from noisybench.noise import NoiseContext, NoiseModel
from noisybench.registry import register_noise


@register_noise("idn")
class InstanceDependent(NoiseModel):
    """Part-dependent instance noise (Xia et al., NeurIPS 2020).

    Per-sample flip rates q_i ~ TruncNormal(r, 0.1, [0, 1]); a random projection W[y] of the
    raw flattened input scores the wrong classes; the label is drawn from
    (1 - q_i on the true class, q_i * softmax(scores) on the others).
    """

    kind = NoiseKind.INSTANCE_DEPENDENT
    display_name = "IDN"
    display_order = 40

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
