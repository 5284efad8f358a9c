"""Helpers shared by the method plugins: noise-kind tests, nearest published rate, common loss terms."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from noisybench.facts import NoiseKind, Setting
from noisybench.method import RecipeQuery


def is_class_conditional(setting: Setting | RecipeQuery) -> bool:
    """True for noise that follows a class map (asymmetric, pair-flip)."""
    return setting.noise_kind is NoiseKind.CLASS_CONDITIONAL


def is_published_asym(setting: Setting | RecipeQuery) -> bool:
    """True for noise along the dataset's own asymmetric class map (what the papers call "asym")."""
    return is_class_conditional(setting) and setting.class_map == "dataset"


def is_symmetric(setting: Setting | RecipeQuery) -> bool:
    """True for symmetric noise, whatever its sampler."""
    return setting.noise_kind is NoiseKind.SYMMETRIC


def nearest_rate(rate: float | None, table: dict[float, object]) -> tuple[object, bool]:
    """Value of ``table`` at the key nearest ``rate`` (ties to the lower key), and whether it was exact."""
    if rate is None:
        rate = 0.0
    key = min(sorted(table), key=lambda k: abs(k - rate))
    return table[key], abs(key - rate) < 1e-9


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


def balanced_draw(labels: np.ndarray, num_samples: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of a class-balanced random subset: shuffle, then keep each sample while its class has
    fewer than ``num_samples / num_classes`` and the subset fewer than ``num_samples`` (the DivideMix
    web-scale loader's rule); returned in shuffled order."""
    order = rng.permutation(len(labels))
    counts = np.zeros(num_classes, dtype=np.int64)
    keep = []
    for i in order:
        c = int(labels[i])
        if counts[c] < num_samples / num_classes and len(keep) < num_samples:
            keep.append(i)
            counts[c] += 1
    return np.asarray(keep, dtype=np.int64)


class PerSampleTargets:
    """Mixin for a method whose per-sample state is one (N, C) tensor ``self.targets``: its label estimate
    (:meth:`~noisybench.method.Method.refined_targets`, which the trainer scores) and its whole checkpointed state."""

    targets: torch.Tensor

    def refined_targets(self) -> torch.Tensor:
        return self.targets

    def state_dict(self) -> dict[str, Any]:
        return {"targets": self.targets}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.targets = state["targets"].to(self.targets.device)
