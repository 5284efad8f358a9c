"""GCE: generalized cross-entropy L_q and its truncated variant (``methods.md`` §4).

Zhang & Sabuncu, NeurIPS 2018 (arXiv 1805.07836). L_q(p, y) = (1 - p_y^q) / q. The truncated
variant (``truncated = true``) alternates ordinary epochs on the weighted loss with a prune step
that keeps sample i iff p_{i, y_i} > k under the best-noisy-validation weights (suite choice,
where the unofficial code leaks the test set), evaluated without augmentation.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from noisybench.errors import ConfigError
from noisybench.facts import CIFAR_10, CIFAR_100, Setting
from noisybench.method import Batch, HParam, Method, TrainContext, scale_epochs
from noisybench.registry import register_method

#: First prune epoch of the unofficial code's CIFAR commands (every 10 epochs after it; methods.md §4).
PRUNE_START = {CIFAR_10: 40, CIFAR_100: 80}


def gce_loss(logits: torch.Tensor, labels: torch.Tensor, q: float) -> torch.Tensor:
    """Per-sample L_q = (1 - p_y^q) / q."""
    p_y = F.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    return (1 - p_y.clamp_min(1e-12) ** q) / q


@register_method("gce")
class GCE(Method):
    """Generalized cross-entropy; ``truncated = true`` adds the pruning of Trunc L_q."""
    display_name = "GCE"

    hparams = {"q": 0.7, "truncated": False, "k": 0.5, "start_prune": None, "prune_every": None}

    @classmethod
    def default_hparams(cls, setting: Setting) -> dict[str, HParam]:
        """CIFAR: the unofficial code's prune schedule (:data:`PRUNE_START`), scaled when the run is not
        the paper's length; other datasets: first third of training, ~12 prunes (suite)."""
        paper_start = PRUNE_START.get(setting.family)
        if paper_start is not None and setting.paper_epochs:
            start = scale_epochs(paper_start, setting.paper_epochs, setting.epochs, "paper-default")
            every = scale_epochs(10, setting.paper_epochs, setting.epochs, "paper-default")
        else:
            start = HParam(max(1, setting.epochs // 3), "suite")
            every = HParam(max(1, round(setting.epochs / 12)), "suite")
        return {
            "q": HParam(0.7, "paper-default"),
            "k": HParam(0.5, "paper-default"),
            "truncated": HParam(False, "suite"),
            "start_prune": start,
            "prune_every": every,
        }

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        if not 0 < values["q"] <= 1:
            raise ConfigError(f"[methods.gce] q must be in (0, 1], got {values['q']}")
        if not 0 < values["k"] < 1:
            raise ConfigError(f"[methods.gce] k must be in (0, 1), got {values['k']}")

    def setup(self, ctx: TrainContext) -> None:
        self.weights = torch.ones(ctx.num_train, device=ctx.device)
        self.best_val = -1.0
        self.best_state: dict[str, torch.Tensor] | None = None

    def training_step(self, ctx: TrainContext, batch: Batch, epoch: int) -> torch.Tensor:
        loss = gce_loss(ctx.nets[0](batch.x), batch.y, self.hp["q"])
        if self.hp["truncated"]:
            loss = loss * self.weights[batch.index]
        return loss.mean()

    def end_epoch(self, ctx: TrainContext, epoch: int) -> dict[str, float]:
        if not self.hp["truncated"]:
            return {}
        if ctx.last_val_acc >= self.best_val:
            self.best_val = ctx.last_val_acc
            self.best_state = copy.deepcopy(ctx.nets[0].state_dict())
        due = epoch + 1 >= self.hp["start_prune"] and (epoch + 1) % self.hp["prune_every"] == 0
        if due and self.best_state is not None:
            self._prune(ctx)
        return {}

    def selection(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.hp["truncated"]:
            return None
        return torch.arange(len(self.weights), device=self.weights.device), self.weights > 0

    def _prune(self, ctx: TrainContext) -> None:
        net = copy.deepcopy(ctx.nets[0])
        net.load_state_dict(self.best_state)
        probs = F.softmax(ctx.predict_train(net), dim=1)
        p_y = probs.gather(1, ctx.y_noisy[:, None]).squeeze(1)
        self.weights = (p_y > self.hp["k"]).float()

    def state_dict(self) -> dict[str, Any]:
        if not self.hp["truncated"]:
            return {}
        return {"weights": self.weights, "best_val": self.best_val, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.weights, self.best_val, self.best_state = state["weights"], state["best_val"], state["best_state"]
