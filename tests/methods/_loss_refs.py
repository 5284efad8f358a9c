"""The official robust-loss formulas of APL, SCE and GLS, written again from the official code (not copied), for
the reference tests, plus the comparison helpers at the tolerances every port is held to.

Each ``ref_*`` follows its official class line by line: the same operations in the same order (softmax then
clamp, a clamped one-hot whose logarithm multiplies the probabilities, ``torch.sum(loss) / batch``), so that a
difference can only come from the suite's rearrangement. The one-hot is built in the logits' dtype (the recorded
float64 vectors patch the official float32 one-hot the same way).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

F64 = {"rtol": 1e-10, "atol": 1e-12}
F32 = {"rtol": 1e-5, "atol": 1e-6}
B, C = 16, 10


def inputs(seed: int = 0, scale: float = 3.0, absent: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 logits (B, C) of the given scale and labels; classes in ``absent`` never occur among the labels."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, generator=g, dtype=torch.float64) * scale
    present = torch.tensor([c for c in range(C) if c not in absent])
    labels = present[torch.randint(0, len(present), (B,), generator=g)]
    return logits, labels


def value_and_grad(fn: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor) -> tuple[torch.Tensor,
                                                                                           torch.Tensor]:
    z = logits.clone().requires_grad_(True)
    value = fn(z)
    (grad,) = torch.autograd.grad(value, z)
    return value.detach(), grad


def assert_reference(ours: Callable[[torch.Tensor], torch.Tensor], ref: Callable[[torch.Tensor], torch.Tensor],
                     logits64: torch.Tensor) -> None:
    """Values and gradients: ours vs the reference at float64 (1e-10 / 1e-12), ours at float32 vs float64 (1e-5 /
    1e-6)."""
    v64, g64 = value_and_grad(ours, logits64)
    rv, rg = value_and_grad(ref, logits64)
    torch.testing.assert_close(v64, rv, **F64)
    torch.testing.assert_close(g64, rg, **F64)
    v32, g32 = value_and_grad(ours, logits64.float())
    assert v32.dtype == torch.float32 and g32.dtype == torch.float32
    torch.testing.assert_close(v32.double(), v64, **F32)
    torch.testing.assert_close(g32.double(), g64, **F32)


def ref_nce(pred: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """``NormalizedCrossEntropy.forward`` (Active-Passive-Losses ``loss.py:86-90``)."""
    pred = F.log_softmax(pred, dim=1)
    one_hot = F.one_hot(labels, pred.shape[1]).to(pred.dtype)
    nce = -1 * torch.sum(one_hot * pred, dim=1) / (-pred.sum(dim=1))
    return scale * nce.mean()


def ref_rce(pred: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """``ReverseCrossEntropy.forward`` (Active-Passive-Losses ``loss.py:51-57``)."""
    pred = F.softmax(pred, dim=1)
    pred = torch.clamp(pred, min=1e-7, max=1.0)
    one_hot = F.one_hot(labels, pred.shape[1]).to(pred.dtype)
    one_hot = torch.clamp(one_hot, min=1e-4, max=1.0)
    rce = -1 * torch.sum(pred * torch.log(one_hot), dim=1)
    return scale * rce.mean()


def ref_sce(pred: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """``SCELoss.forward`` (SCELoss-Reproduce ``loss.py``; Active-Passive-Losses ``loss.py:27-40``)."""
    ce = torch.nn.CrossEntropyLoss()(pred, labels)
    return alpha * ce + ref_rce(pred, labels, beta)


def ref_gls(logits: torch.Tensor, labels: torch.Tensor, smooth_rate: float, wa: float, wb: float) -> torch.Tensor:
    """``loss_gls`` (negative-label-smoothing ``loss.py``), without its unused ``epoch`` and its host copy."""
    confidence = 1.0 - smooth_rate
    logprobs = F.log_softmax(logits, dim=-1)
    nll_loss = -logprobs.gather(dim=-1, index=labels.unsqueeze(1)).squeeze(1)
    smooth_loss = -logprobs.mean(dim=-1)
    loss = (wa + wb * confidence) * nll_loss + wb * smooth_rate * smooth_loss
    return torch.sum(loss) / len(loss)


def ref_selc(logits: torch.Tensor, soft_rows: torch.Tensor, momentum: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``SELCLoss.forward`` after ``es`` (MacLLL/SELC @ 69bcf1e, ``class-conditional_noise/train_cifar_with_SELC.py``
    lines 53 and 58-63): the softmax of the logits; the soft rows move to m t + (1 - m) softmax(detached logits); the
    loss is the batch mean of -sum_c log(softmax)_c t_c with the moved rows (the log of the softmax, not a
    log-softmax). Returns (loss, moved rows)."""
    pred = torch.softmax(logits, dim=1)
    moved = momentum * soft_rows + (1 - momentum) * torch.softmax(logits.detach(), dim=1)
    return (-torch.sum(torch.log(pred) * moved, dim=1)).mean(), moved
