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


def ref_sop_loss(index: torch.Tensor, outputs: torch.Tensor, labels: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                 num_classes: int, ratio_consistency: float, ratio_balance: float) -> torch.Tensor:
    """``overparametrization_loss.forward`` (shengliu66/SOP ``model/loss.py:55-120``) with the trainer's one-hot
    ``label`` (``trainer/trainer.py:89``, here in the outputs' dtype) and the u, v parameters passed in."""
    label = torch.zeros(len(labels), num_classes, dtype=outputs.dtype).scatter_(1, labels.view(-1, 1), 1)
    if len(outputs) > len(index):
        output, output2 = torch.chunk(outputs, 2)
    else:
        output = outputs
    eps = 1e-4
    U_square = u[index] ** 2 * label  # noqa: N806 (the official names)
    V_square = v[index] ** 2 * (1 - label)  # noqa: N806
    U_square = torch.clamp(U_square, 0, 1)  # noqa: N806
    V_square = torch.clamp(V_square, 0, 1)  # noqa: N806
    original_prediction = F.softmax(output, dim=1)
    prediction = torch.clamp(original_prediction + U_square - V_square.detach(), min=eps)
    prediction = F.normalize(prediction, p=1, eps=eps)
    prediction = torch.clamp(prediction, min=eps, max=1.0)
    with torch.no_grad():  # soft_to_hard
        label_one_hot = torch.zeros(len(output), num_classes, dtype=outputs.dtype).scatter_(
            1, output.detach().argmax(dim=1).view(-1, 1), 1)
    MSE_loss = F.mse_loss(label_one_hot + U_square - V_square, label, reduction="sum") / len(label)  # noqa: N806
    loss = torch.mean(-torch.sum(label * torch.log(prediction), dim=-1))
    loss += MSE_loss
    if ratio_balance > 0:
        avg_prediction = torch.mean(prediction, dim=0)
        prior_distr = 1.0 / num_classes * torch.ones_like(avg_prediction)
        avg_prediction = torch.clamp(avg_prediction, min=eps, max=1.0)
        balance_kl = torch.mean(-(prior_distr * torch.log(avg_prediction)).sum(dim=0))
        loss += ratio_balance * balance_kl
    if (len(outputs) > len(index)) and (ratio_consistency > 0):
        loss += ratio_consistency * torch.mean(ref_sop_consistency(output, output2))
    return loss


def ref_sop_consistency(output1: torch.Tensor, output2: torch.Tensor) -> torch.Tensor:
    """``overparametrization_loss.consistency_loss`` (``model/loss.py:122-127``)."""
    preds1 = F.softmax(output1, dim=1).detach()
    preds2 = F.log_softmax(output2, dim=1)
    loss_kldiv = F.kl_div(preds2, preds1, reduction="none")
    return torch.sum(loss_kldiv, dim=1)


def ref_sop_optimizer(u: torch.nn.Parameter, v: torch.nn.Parameter, lr_u: float, lr_v: float) -> torch.optim.SGD:
    """The official ``optimizer_overparametrization`` (``train.py:83-89``, config ``momentum 0``, ``weight_decay
    0``): SGD with one group per tensor."""
    return torch.optim.SGD([{"params": u, "lr": lr_u, "weight_decay": 0}, {"params": v, "lr": lr_v, "weight_decay": 0}],
                           lr=1, momentum=0, weight_decay=0)
