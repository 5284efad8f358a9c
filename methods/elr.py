"""ELR: early-learning regularization (Liu, Niles-Weed, Razavian, Fernandez-Granda; "Early-Learning Regularization
Prevents Memorization of Noisy Labels", NeurIPS 2020), as in the official code shengliu66/ELR @ 934af53
(``ELR/model/loss.py:11-29``, ``elr_loss``).

One network. A per-sample target buffer T (N x C) starts at **zero**. For every batch, from the
first iteration: clamp the predictions to [1e-4, 1 - 1e-4], update the targets by an EMA
t_i <- beta t_i + (1 - beta) p_hat_i / sum(p_hat_i) (no gradient, before the loss), then
L = mean CE(e_y, p) + lambda mean log(1 - <t_i, p_hat_i>), where CE uses the raw logits and the
regulariser the clamped probabilities with gradient.

Hyperparameters (``beta``, ``lam``): CIFAR values from the official configs (``paper``) for the
noise the paper ran (symmetric, and the dataset's asymmetric map); other noise (pair-flip,
instance-dependent, human) and every other dataset reuse the nearest CIFAR row (``suite``). ELR has
no epoch-based hyperparameter.

Paper recipes (``protocol = "paper"``), chosen by the noise (:meth:`ELR.paper_recipe`): on CIFAR-10,
ResNet-34, SGD lr 0.02, momentum 0.9, wd 1e-3, batch 128 (both official configs) for 120 epochs with
lr x0.01 at 40 and 80. For asymmetric noise that schedule is the official asymmetric-noise config's; for
symmetric (and other) noise it comes from the paper's text: the shipped symmetric-noise config trains 150
epochs under ``CosineAnnealingWarmRestarts(T_0=10, eta_min=0.001)`` (the official README's "ELR (cosine
annealing)" row), reachable as ``[train] epochs = 150, schedule = "cosine-restarts", restart_every = 10,
eta_min = 0.001``. CIFAR-100: the official config (x0.01 at 80/120 of 150). Each value's citation
(``recipe(ref=...)``) is shown by ``noisybench plan``; the README names the config files. On the CLOTHING_1M and
WEB_VISION families the official ELR+ configs of the same repository without the second network
(``paper-default``), with timm's Inception-ResNet-v2 on WEB_VISION.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from noisybench.errors import ConfigError
from noisybench.facts import CIFAR_10, CIFAR_100, CLOTHING_1M, WEB_VISION, Setting
from noisybench.method import Batch, HParam, Method, RecipeQuery, TrainContext, recipe
from noisybench.methods._common import PerSampleTargets, is_class_conditional, is_published_asym, is_symmetric
from noisybench.registry import register_method
from noisybench.search_space import LogUniform, SearchSpace, Uniform

CLAMP = 1e-4


def elr_update_targets(targets: torch.Tensor, probs: torch.Tensor, beta: float) -> torch.Tensor:
    """EMA step of the ELR targets: beta t + (1 - beta) p_hat / sum(p_hat), without gradient.

    Parameters
    ----------
    targets
        Current targets of the batch rows, shape (B, C).
    probs
        Softmax outputs of the batch, shape (B, C); they are clamped to [1e-4, 1 - 1e-4] and
        renormalised here.
    beta
        Target momentum.

    Returns
    -------
    torch.Tensor
        The new targets (B, C).
    """
    p_hat = probs.detach().clamp(CLAMP, 1.0 - CLAMP)
    return torch.lerp(p_hat / p_hat.sum(dim=1, keepdim=True), targets, beta)


def elr_loss(
    logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor, lam: float, probs: torch.Tensor | None = None
) -> torch.Tensor:
    """ELR loss of a batch: mean CE(e_y, p) + lam * mean log(1 - <t, clamp(p)>).

    Parameters
    ----------
    logits
        Network outputs (B, C).
    labels
        Observed labels (B,).
    targets
        Already-updated targets of the batch rows (B, C), treated as constants.
    lam
        Regulariser weight lambda.
    probs
        ``clamp(softmax(logits), 1e-4, 1 - 1e-4)`` when already computed (with its graph).

    Returns
    -------
    torch.Tensor
        The scalar loss (often negative).
    """
    p_hat = F.softmax(logits, dim=1).clamp(CLAMP, 1.0 - CLAMP) if probs is None else probs
    reg = torch.log1p(-torch.linalg.vecdot(targets.detach(), p_hat))
    return F.cross_entropy(logits, labels) + lam * reg.mean()


#: The pure numerics the method calls, replayable against vectors recorded from the official code.
REFERENCE_FUNCTIONS = (elr_update_targets, elr_loss)


#: (images' family, symmetric?) -> (beta, lambda): lines 39-40 of the official configs (shengliu66/ELR@934af53,
#: folder ``ELR/``: the CIFAR-10 config, the CIFAR-10 config for asymmetric noise, the CIFAR-100 config).
PAPER_VALUES = {
    (CIFAR_10, True): (0.7, 3.0),
    (CIFAR_10, False): (0.9, 1.0),
    (CIFAR_100, True): (0.9, 7.0),
    (CIFAR_100, False): (0.9, 7.0),
}
#: Families whose rows are published; others reuse the row of their images' family (or CIFAR-10's).
PUBLISHED = (CIFAR_10, CIFAR_100)


#: Where ELR's CIFAR recipe values come from (official repository shengliu66/ELR at commit 934af53).
REPO = "shengliu66/ELR@934af53"
PAPER_TEXT = ("ELR paper text (Liu et al., NeurIPS 2020); the shipped CIFAR-10 symmetric-noise config: 150 epochs, "
              "warm restarts")
CONFIG_SYM = f"{REPO} official CIFAR-10 config (symmetric noise)"
CONFIG_ASYM = f"{REPO} official CIFAR-10 config for asymmetric noise"
CONFIG_C100 = f"{REPO} official CIFAR-100 config"
#: CIFAR-10: the optimiser both official configs share, and the schedule, whose source depends on the noise.
_C10_OPTIMISER = {"arch": "resnet34", "optimizer": "sgd", "lr": 0.02, "momentum": 0.9, "nesterov": False,
                      "weight_decay": 1e-3, "batch_size": 128, "augment": True}
_C10_SCHEDULE = {"epochs": 120, "schedule": "step", "milestones": [40, 80], "gamma": 0.01}
C10_SYMMETRIC = {**recipe(ref=CONFIG_SYM, **_C10_OPTIMISER),
                     **recipe(ref=PAPER_TEXT, **_C10_SCHEDULE)}
C10_ASYMMETRIC = recipe(ref=CONFIG_ASYM, **_C10_OPTIMISER, **_C10_SCHEDULE)


@register_method("elr")
class ELR(PerSampleTargets, Method):
    """Early-learning regularization: zero-initialised EMA targets and lambda log(1 - <t, p>)."""
    display_name = "ELR"

    hparams = {"beta": 0.7, "lam": 3.0}
    paper_recipes = {
        CIFAR_10: C10_SYMMETRIC,
        CIFAR_100: recipe(ref=CONFIG_C100, arch="resnet34", epochs=150, optimizer="sgd",
                          lr=0.02, momentum=0.9, nesterov=False, weight_decay=1e-3, schedule="step",
                          milestones=[80, 120], gamma=0.01, batch_size=128, augment=True),
        CLOTHING_1M: recipe("paper-default", arch="resnet50", epochs=15, optimizer="sgd", lr=0.002, momentum=0.9,
                            nesterov=False, weight_decay=1e-3, schedule="step", milestones=[7], gamma=0.1,
                            batch_size=64, augment=True),
        WEB_VISION: recipe("paper-default", arch="inception_resnet_v2", epochs=100, optimizer="sgd", lr=0.02,
                           momentum=0.9, nesterov=False, weight_decay=5e-4, schedule="step", milestones=[50],
                           gamma=0.1, batch_size=32, augment=True),
    }

    @classmethod
    def paper_recipe(cls, query: RecipeQuery) -> dict[str, HParam] | None:
        """CIFAR-10 with the dataset's asymmetric map: the official asymmetric config; otherwise by family."""
        if query.family == CIFAR_10 and is_published_asym(query):
            return C10_ASYMMETRIC
        return super().paper_recipe(query)

    @classmethod
    def default_hparams(cls, setting: Setting) -> dict[str, HParam]:
        symmetric = not is_class_conditional(setting)
        published = setting.family in PUBLISHED and (is_symmetric(setting) or is_published_asym(setting))
        base = CIFAR_100 if setting.images == CIFAR_100 else CIFAR_10
        beta, lam = PAPER_VALUES[(base, symmetric)]
        source = "paper" if published else "suite"  # other datasets reuse the nearest CIFAR row
        return {"beta": HParam(beta, source), "lam": HParam(lam, source)}

    @classmethod
    def search_space(cls, setting: Setting, hparams: Mapping[str, Any] | None = None) -> SearchSpace:
        """What ``[tune]`` searches.

        - ``beta``: uniform on [0.7, 0.99] (``paper-default``): the official README (shengliu66/ELR) calls
          beta "often quite robust (can be 0.7, 0.9 or 0.99, etc.)"; the range spans those values.
        - ``lam``: log-uniform on [0.3, 10] (``suite``): the same README says that lambda needs more careful
          tuning; the official configs use 1, 3 and 7, and the range adds about half a decade on either side of
          them, since datasets other than CIFAR may want a weaker or a stronger pull.
        """
        return {"beta": Uniform(0.7, 0.99, "paper-default"), "lam": LogUniform(0.3, 10.0, "suite")}

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        if not 0 <= values["beta"] < 1:
            raise ConfigError(f"[methods.elr] beta must be in [0, 1), got {values['beta']}")
        if values["lam"] < 0:
            raise ConfigError(f"[methods.elr] lam must be >= 0, got {values['lam']}")

    def setup(self, ctx: TrainContext) -> None:
        self.targets = torch.zeros(ctx.num_train, ctx.num_classes, device=ctx.device)

    def training_step(self, ctx: TrainContext, batch: Batch, epoch: int) -> torch.Tensor:
        logits = ctx.nets[0](batch.x)
        p_hat = F.softmax(logits, dim=1).clamp(CLAMP, 1.0 - CLAMP)
        updated = elr_update_targets(self.targets[batch.index], p_hat, self.hp["beta"])
        self.targets[batch.index] = updated
        return elr_loss(logits, batch.y, updated, self.hp["lam"], p_hat)
