"""CE: plain cross-entropy on the observed labels, the baseline every table starts from.

CE has no hyperparameter of its own, so its search space is empty: under a grid's ``[tune]`` it runs its
default trial only (effective budget 1), unless ``[tune] recipe`` tunes recipe keys for every method.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from noisybench.method import Batch, Method, TrainContext
from noisybench.registry import register_method

#: CE has no numerics of its own: it calls ``torch.nn.functional.cross_entropy``.
REFERENCE_FUNCTIONS = ()


@register_method("ce")
class CE(Method):
    """Standard cross-entropy; the baseline every table starts from."""

    display_name = "CE"

    def training_step(self, ctx: TrainContext, batch: Batch, epoch: int) -> torch.Tensor:
        return F.cross_entropy(ctx.nets[0](batch.x), batch.y)
