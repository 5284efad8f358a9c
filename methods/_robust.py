"""The reverse cross-entropy shared by APL (NCE+RCE) and SCE, as both official PyTorch codes compute it.

RCE(p, y) = -sum_k clamp(p_k, 1e-7, 1) log clamp(onehot_k, 1e-4, 1) (``ReverseCrossEntropy`` of
HanxunH/Active-Passive-Losses @ 04bce53, ``loss.py:51-57``; the same lines in ``SCELoss`` there and in
HanxunH/SCELoss-Reproduce @ c81fb33). The label's own term is clamp(p_y) * log 1 = 0, so
RCE = -log(1e-4) * sum_{k != y} clamp(p_k, 1e-7, 1): the constant is A = log(1e-4), i.e. -A = 9.21, not the
papers' A = -4. The clamp at 1e-7 blocks the gradient of every p_k below it (``torch.clamp`` passes the
gradient only inside its bounds). The constant is computed in the logits' dtype (the official code builds the
one-hot in float32 for every input: for float64 logits its RCE differs from this one by 1.4e-8 relative).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from noisybench.errors import ConfigError

#: Lower clamp of the predicted probabilities (``torch.clamp(pred, min=1e-7, max=1.0)``).
PROB_FLOOR = 1e-7
#: Lower clamp of the one-hot labels, whose logarithm is RCE's constant A = log(1e-4).
LABEL_FLOOR = 1e-4


@functools.cache
def rce_constant(dtype: torch.dtype) -> float:
    """-log(1e-4) computed in ``dtype`` (9.2103403719761836 in float64; 9.2103405 in float32).

    Returned as a Python float that ``dtype`` represents exactly, so multiplying a tensor of that dtype by it
    copies nothing to the device and rounds nothing.
    """
    return float(-torch.tensor(LABEL_FLOOR, dtype=dtype).log())


def reverse_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample RCE = -log(1e-4) * sum_{k != y} clamp(softmax(logits)_k, 1e-7, 1).

    Parameters
    ----------
    logits
        Network outputs (B, C), float32 or float64.
    labels
        Observed labels (B,), int64.

    Returns
    -------
    torch.Tensor
        (B,) values in the dtype of ``logits``; no gradient flows into the label's own probability (its term
        is multiplied by log 1 = 0 in the official code) nor into any probability below 1e-7.
    """
    probs = F.softmax(logits, dim=1).clamp(PROB_FLOOR, 1.0)
    others = probs.scatter(1, labels[:, None], 0.0)
    return others.sum(dim=1) * rce_constant(logits.dtype)


def check_loss_weights(values: dict[str, Any], method: str) -> None:
    """``alpha`` and ``beta`` (the weights of a two-term robust loss) are >= 0 and not both 0 (a constant loss)."""
    for key in ("alpha", "beta"):
        if not values[key] >= 0:
            raise ConfigError(f"[methods.{method}] {key} must be >= 0, got {values[key]!r}")
    if values["alpha"] == 0 and values["beta"] == 0:
        raise ConfigError(f"[methods.{method}] alpha and beta are both 0: the loss would be constant; set one > 0")
