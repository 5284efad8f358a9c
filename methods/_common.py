"""Helpers shared by the method plugins: noise kinds, epoch scaling, refined-target diagnostics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from noisybench.config import Setting

if TYPE_CHECKING:
    from noisybench.trainer import TrainContext

#: Datasets with published per-setting values (methods.md §5, §6, §7.3).
CIFAR = ("cifar10", "cifar100")
#: CIFAR-N (human labels on the CIFAR images): suite values derived from the CIFAR ones (``a`` in the spec).
CIFAR_N = {"cifar10n": "cifar10", "cifar100n": "cifar100"}


def cifar_base(dataset: str) -> str | None:
    """``cifar10`` / ``cifar100`` for the CIFAR datasets and their CIFAR-N versions, else None."""
    return dataset if dataset in CIFAR else CIFAR_N.get(dataset)


def is_asymmetric(setting: Setting) -> bool:
    """True for class-dependent noise families (``asym*``, ``pairflip*``)."""
    return setting.noise_family.startswith(("asym", "pairflip"))


def is_symmetric(setting: Setting) -> bool:
    """True for the symmetric families (``sym``, ``sym-draw``, ``sym-dividemix``)."""
    return setting.noise_family.startswith("sym")


def nearest_rate(rate: float | None, table: dict[float, object]) -> tuple[object, bool]:
    """Value of ``table`` at the key nearest ``rate`` (ties to the lower key), and whether it was exact."""
    if rate is None:
        rate = 0.0
    key = min(sorted(table), key=lambda k: abs(k - rate))
    return table[key], abs(key - rate) < 1e-9


def scaled_epochs(fraction: float, epochs: int, minimum: int = 1) -> int:
    """``round(fraction * epochs)``, at least ``minimum``: epoch counts for datasets no paper ran."""
    return max(minimum, int(round(fraction * epochs)))


def paper_epoch_count(value: int, paper_epochs: int, setting: Setting, source: str) -> tuple[int, str]:
    """A paper's epoch count (warm-up, E_w, ramp) for a run of ``setting.epochs`` epochs.

    Unchanged (with ``source``) when the run is as long as the paper's schedule of
    ``paper_epochs``; otherwise scaled proportionally, at least 1, and tagged ``suite``.
    """
    if setting.epochs == paper_epochs:
        return value, source
    return max(1, int(round(value * setting.epochs / paper_epochs))), "suite"


def refined_target_stats(targets: torch.Tensor, ctx: TrainContext) -> dict[str, float]:
    """Agreement of argmax refined targets with the clean labels (agreed history columns).

    ``refined_acc`` is the share of training samples whose refined target's argmax equals the
    clean label; ``refined_acc_noisy`` the same share among the samples whose observed label is
    wrong. Empty when clean labels are unknown.
    """
    clean = ctx.y_clean_for_diagnostics
    if clean is None:
        return {}
    hit = targets.argmax(dim=1) == clean
    noisy = ctx.y_noisy != clean
    stats = {"refined_acc": float(hit.float().mean())}
    stats["refined_acc_noisy"] = float(hit[noisy].float().mean()) if bool(noisy.any()) else float("nan")
    return stats


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-row Shannon entropy H(softmax(z)) = -sum_c p_c log p_c, computed stably from logits."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row CE(targets, softmax(logits)) = -sum_c t_c log p_c."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Rows of ``probs`` raised to 1/T and renormalised (MixMatch's sharpening)."""
    powered = probs ** (1.0 / temperature)
    return powered / powered.sum(dim=1, keepdim=True)
