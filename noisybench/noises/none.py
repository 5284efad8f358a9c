"""No noise: the clean-label reference run."""

from __future__ import annotations

import numpy as np

from noisybench.facts import NoiseKind
from noisybench.noise import NoiseContext, NoiseModel
from noisybench.registry import register_noise


@register_noise("none")
class NoNoise(NoiseModel):
    """Keep the labels (a clean-label reference run)."""

    kind = NoiseKind.NONE
    display_name = "Clean"
    display_order = 0

    takes_rate = False
    description = "no noise: labels unchanged"

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        return ctx.labels.copy()
