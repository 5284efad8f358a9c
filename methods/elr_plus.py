"""ELR+: early-learning regularization with two networks, weight averaging and mixup (Liu, Niles-Weed, Razavian,
Fernandez-Granda; NeurIPS 2020), as ``ELR_plus/`` of the official shengliu66/ELR @ 934af53 trains it.

Two networks, each with its own optimiser, its own per-sample target buffer T_k (N x C, zeros at the start) and a
weight-averaged copy (EMA). Every epoch network 1 trains a whole pass, then network 2 (the official single-process
order, ``base/base_trainer.py:184-185``). Per batch of network k (``trainer/trainer.py:92-120``): mixup with
lambda ~ Beta(alpha, alpha), lambda <- max(lambda, 1 - lambda), one permutation pi of the batch, applied to the inputs
and the one-hot labels; the **other** network's EMA copy predicts the un-mixed batch; the targets move by
t_i <- beta t_i + (1 - beta) softmax(z_ema_i) / sum (no clamp, :func:`update_targets`); the regulariser's targets are
mixed with the same lambda and pi, q_i = lambda t_i + (1 - lambda) t_pi(i); the loss is
soft-CE(mixed one-hot, p(mixed x)) + r(s) lambda_ELR mean_i log(1 - <q_i, clamp(p_i, 1e-4, 1 - 1e-4)>)
(:func:`elr_plus_loss`, ``model/loss.py:23-36``), r(s) = sigmoid_rampup(s, coef_step); after the optimiser's step
network k's EMA copy moves to gamma_s EMA + (1 - gamma_s) net, parameters only, with
gamma_s = sigmoid_rampup(s + 1, ema_step) gamma (:func:`ema_update`, ``trainer.py:321-331``). The test prediction
is 0.5 (z_1 + z_2) (``trainer.py:185,234``).

Fidelity decisions (reproduced unless listed in :attr:`ELRPlus.deviations`):

* **The peer's EMA network runs in train mode**: batch statistics, and its batch-norm running statistics move with
  these forwards (``trainer.py:76-77``: the EMA networks are set to train mode and never to eval mode).
* **The EMA averages parameters only**; an EMA network's buffers (batch-norm statistics) evolve by its own forwards.
* **The EMA networks start from their own random initialisation**, not from copies of the networks
  (``train.py:74-79`` builds them as new networks): during network 1's first epoch its targets come from an untrained
  network 2 EMA. The suite re-initialises copies of the networks (PyTorch's default initialisation, seeded).
* One step counter s for both networks, advanced by network 1's steps at the end of each epoch
  (``base_trainer.py:188``): within an epoch both networks see s = (steps before the epoch) + (its own steps so far).
* CIFAR-100 (the official test is ``num_classes == 100``): the CE target is the mixed one-hot times the mixed EMA
  targets, renormalised (``loss.py:28-30``); ``ce_target_product``, on for 100-class datasets.
* Evaluation follows the single-GPU path (the mean of the two networks' logits); the multi-GPU path evaluates
  network 1 with network 2's EMA copy (``base_trainer.py:192-217``).

Hyperparameters: beta / lambda as the official configs (CIFAR-10 symmetric 0.7 / 3, asymmetric 0.9 / 1; CIFAR-100
0.9 / 7), mixup alpha 1, gamma 0.997 ramped over ``ema_step`` = 40,000 steps, ``coef_step`` 0 (CIFAR-10: no ramp of
the regulariser) / 40,000 (CIFAR-100) (the official CIFAR-10 configs, symmetric and asymmetric noise, lines 20-25
and 63-69, and the CIFAR-100 config, lines 20-25 and 62-68). The ramps are counted in optimiser steps of a 200 /
250-epoch CIFAR run (45,000 samples, batch 128: 352 steps per epoch); on any other run (another schedule, dataset or
batch size) the suite keeps the ramps' share of the run's steps (``ema_step = null``, ``coef_step = null``: resolved
when the run starts from its epochs, training-set size and batch size; ``suite``). CIFAR-N and other datasets reuse
the CIFAR row of their images (``suite``). The CLOTHING_1M and WEB_VISION families get their configs' values (gamma
0.9999 / 0.997 with the running-mean rule ``min(1 - 1/(s+1), gamma)``, mixup alpha 1 / 1.5, ``paper-default``) but
no paper recipe: their official epochs are iteration-based draws the suite's loaders do not reproduce.

Paper recipes (``protocol = "paper"``): PreAct ResNet-18 x2 (the official ``PreResNet.py``: the suite's
``preact_resnet18``), SGD lr 0.02, momentum 0.9, weight decay 5e-4, batch 128, random crop and flip; CIFAR-10: 200
epochs, lr x0.1 at 150; CIFAR-100: 250 epochs, x0.1 at 200; 90 % of the training set (the official loaders hold out
a class-balanced 10 % as noisy validation, the CIFAR-10 loader's ``train_val_split``, lines 39-54).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from noisybench.errors import ConfigError
from noisybench.facts import CIFAR_10, CIFAR_100, CLOTHING_1M, WEB_VISION, Setting
from noisybench.method import HParam, Method, TrainContext, recipe
from noisybench.methods._common import is_class_conditional, is_published_asym, is_symmetric, soft_cross_entropy
from noisybench.methods.elr import CLAMP, PAPER_VALUES
from noisybench.methods.pes import reinitialise
from noisybench.registry import register_method
from noisybench.search_space import LogUniform, SearchSpace, Uniform

REPO = "shengliu66/ELR@934af53"
CONFIG_C10 = f"{REPO} ELR_plus official CIFAR-10 config"
CONFIG_C100 = f"{REPO} ELR_plus official CIFAR-100 config"
PUBLISHED = (CIFAR_10, CIFAR_100)
#: Official run lengths and the steps of one epoch (45,000 training samples in batches of 128).
PAPER_EPOCHS = {CIFAR_10: 200, CIFAR_100: 250}
PAPER_STEPS_PER_EPOCH = math.ceil(45000 / 128)
#: Length of the EMA ramp and of the CIFAR-100 regulariser ramp, in optimiser steps of the official run.
RAMP_STEPS = 40000
EMA_RAMPUPS = ("sigmoid", "mean")
#: Web-scale configs: (gamma, mixup alpha), both with the running-mean EMA rule.
WEB_VALUES = {CLOTHING_1M: (0.9999, 1.0), WEB_VISION: (0.997, 1.5)}
_CIFAR = dict(arch="preact_resnet18", optimizer="sgd", lr=0.02, momentum=0.9, nesterov=False, weight_decay=5e-4,
              schedule="step", gamma=0.1, batch_size=128, augment=True, val_fraction=0.1)


# ---------------------------------------------------------------------------- reference functions
def sigmoid_rampup(current: float, length: float) -> float:
    """exp(-5 (1 - min(max(current, 0), length) / length)^2), and 1 when ``length`` is 0 (``utils/util.py:45-52``)."""
    if length == 0:
        return 1.0
    clipped = np.clip(current, 0.0, length)
    phase = 1.0 - clipped / length
    return float(np.exp(-5.0 * phase * phase))


def update_targets(rows: torch.Tensor, ema_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """``update_hist``: beta t + (1 - beta) softmax(z) / sum softmax(z), without gradient and without a clamp.

    Parameters
    ----------
    rows
        The batch's current targets (B, C).
    ema_logits
        The peer EMA network's logits of the un-mixed batch (B, C).
    beta
        Target momentum.

    Returns
    -------
    torch.Tensor
        The batch's new targets (B, C), in the logits' dtype.
    """
    probs = F.softmax(ema_logits.detach(), dim=1)
    return beta * rows + (1 - beta) * probs / probs.sum(dim=1, keepdim=True)


def mixup(values: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """lam v + (1 - lam) v[perm] (``_mixup_data`` for inputs and one-hot labels; ``update_hist`` for targets)."""
    return lam * values + (1 - lam) * values[perm]


def elr_plus_loss(
    logits: torch.Tensor, mixed_onehot: torch.Tensor, mixed_targets: torch.Tensor, lam: float, ramp: float,
    ce_target_product: bool = False,
) -> torch.Tensor:
    """``elr_plus_loss.forward``: mean soft-CE(y, p) + ramp * (lam * mean log(1 - <q, clamp(p, 1e-4, 1 - 1e-4)>)).

    Parameters
    ----------
    logits
        Outputs on the mixed batch (B, C); computed in their dtype.
    mixed_onehot
        Mixed one-hot labels y (B, C).
    mixed_targets
        Mixed EMA targets q (B, C), constants.
    lam
        The regulariser's weight lambda.
    ramp
        Its ramp factor, ``sigmoid_rampup(step, coef_step)``.
    ce_target_product
        The official 100-class rule (``num_classes == 100``): the CE target is y * q renormalised per row.
    """
    q = mixed_targets.detach()
    target = mixed_onehot
    if ce_target_product:
        target = mixed_onehot * q
        target = target / target.sum(dim=1, keepdim=True)
    probs = F.softmax(logits, dim=1).clamp(CLAMP, 1.0 - CLAMP)
    reg = torch.log(1 - (q * probs).sum(dim=1)).mean()
    return soft_cross_entropy(logits, target).mean() + ramp * (lam * reg)


@torch.no_grad()
def ema_update(ema_net: nn.Module, net: nn.Module, alpha: float) -> None:
    """``update_ema_variables``: every parameter of ``ema_net`` <- alpha * it + (1 - alpha) * ``net``'s, in place;
    buffers untouched."""
    ema_params, params = list(ema_net.parameters()), list(net.parameters())
    torch._foreach_mul_(ema_params, alpha)  # one multi-tensor kernel per operation on a GPU, same values
    torch._foreach_add_(ema_params, params, alpha=1 - alpha)


def ema_weight(step: int, gamma: float, ema_step: int, rampup: str = "sigmoid") -> float:
    """The EMA factor after optimiser step ``step``: sigmoid_rampup(step + 1, ema_step) gamma (CIFAR configs,
    ``ema_update: true``) or min(1 - 1 / (step + 1), gamma) (``"mean"``: the configs of the web-scale datasets)."""
    if rampup == "mean":
        return min(1 - 1 / (step + 1), gamma)
    return sigmoid_rampup(step + 1, ema_step) * gamma


REFERENCE_FUNCTIONS = (elr_plus_loss, update_targets, sigmoid_rampup, ema_update, mixup, ema_weight)


def fresh_copy(net: nn.Module) -> nn.Module:
    """A network of ``net``'s architecture with its own random initialisation (PyTorch's defaults), in train mode,
    without gradients: an EMA network as the official code builds it."""
    ema = copy.deepcopy(net)
    reinitialise([ema])
    for param in ema.parameters():
        param.requires_grad_(False)
    return ema.train()


def _ramp(value: int, setting: Setting) -> HParam:
    """A ramp length in steps: the official 40,000 on the paper's schedule, else null (scaled when the run starts)."""
    if setting.paper_schedule and setting.family in PUBLISHED:
        return HParam(value, "paper")
    return HParam(None, "suite")


@register_method("elr-plus")
class ELRPlus(Method):
    """ELR+: two networks, each regularised towards the other's weight-averaged predictions, with mixup."""

    display_name = "ELR+"
    num_networks = 2
    relative_cost = 2.5  # FLOPs of a quick-grid run: 2.46x (MNIST-1D), 2.48x (8x8 digit images) CE
    hparams = {"beta": 0.7, "lam": 3.0, "mixup_alpha": 1.0, "ema_alpha": 0.997, "ema_rampup": "sigmoid",
               "ema_step": None, "coef_step": None, "ce_target_product": False}
    paper_recipes = {
        CIFAR_10: recipe(ref=f"{CONFIG_C10}:10-18,28-59,76-86", epochs=200, milestones=[150], **_CIFAR),
        CIFAR_100: recipe(ref=f"{CONFIG_C100}:10-18,28-58,75-85", epochs=250, milestones=[200], **_CIFAR),
    }
    deviations = (
        "One noisy label set and one train/validation split for both networks: each official network's loader "
        "redraws the split and the noise with unseeded numpy, so the two networks can train on different labels; "
        "the suite's run has one noise realisation, shared by its networks as by every method of a grid.",
        "The official validation split holds out 10 % balanced by the clean label; the suite's 10 % split is "
        "stratified by the observed label (the split of every method of a grid).",
        "A batch of one sample (a training set one above a multiple of the batch size) is skipped: batch norm cannot "
        "train on it (the official loop raises).",
    )

    reproduced = (
        "The peer's EMA network predicts in train mode (batch statistics; its running statistics move), "
        "trainer/trainer.py:76-77,107.",
        "The EMA averages parameters only; an EMA network's buffers evolve by its own forwards (trainer.py:330-331).",
        "The EMA networks start from their own random initialisation (train.py:74-79), so network 1's first epoch "
        "learns from an untrained EMA of network 2.",
        "One step counter for both networks, advanced by network 1's steps after each epoch "
        "(base/base_trainer.py:188); EMA factor sigmoid_rampup(s + 1, ema_step) * ema_alpha.",
        "100 classes: the CE target is the mixed one-hot times the mixed targets, renormalised (model/loss.py:28-30).",
        "Evaluation by the mean of the two networks' logits, the single-GPU path (base_trainer.py:209-217).",
    )

    @classmethod
    def default_hparams(cls, setting: Setting) -> dict[str, HParam]:
        if setting.family in WEB_VALUES:
            gamma, alpha = WEB_VALUES[setting.family]
            web = {"beta": 0.7, "lam": 3.0, "mixup_alpha": alpha, "ema_alpha": gamma, "ema_rampup": "mean",
                   "ema_step": RAMP_STEPS, "coef_step": 0, "ce_target_product": False}
            return {key: HParam(value, "paper-default") for key, value in web.items()}
        base = CIFAR_100 if setting.images == CIFAR_100 else CIFAR_10
        beta, lam = PAPER_VALUES[(base, not is_class_conditional(setting))]
        ran = setting.family in PUBLISHED and (is_symmetric(setting) or is_published_asym(setting))
        source = "paper" if ran else "suite"
        fixed = "paper" if setting.family in PUBLISHED else "paper-default"
        hundred = setting.num_classes == 100
        return {
            "beta": HParam(beta, source), "lam": HParam(lam, source),
            "mixup_alpha": HParam(1.0, fixed), "ema_alpha": HParam(0.997, fixed),
            "ema_rampup": HParam("sigmoid", fixed),
            "ema_step": _ramp(RAMP_STEPS, setting),
            "coef_step": _ramp(RAMP_STEPS, setting) if base == CIFAR_100 else HParam(0, fixed),
            "ce_target_product": HParam(hundred, "paper" if setting.family in PUBLISHED else "suite"),
        }

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        ramps = all(values[k] is None or (isinstance(values[k], int) and not isinstance(values[k], bool)
                                          and values[k] >= 0) for k in ("ema_step", "coef_step"))
        checks = [
            (0 <= values["beta"] < 1, "beta must be in [0, 1)"),
            (values["lam"] >= 0, "lam must be >= 0"),
            (values["mixup_alpha"] >= 0, "mixup_alpha must be >= 0 (0: no mixup)"),
            (0 <= values["ema_alpha"] < 1, "ema_alpha must be in [0, 1)"),
            (values["ema_rampup"] in EMA_RAMPUPS, f"ema_rampup must be one of {', '.join(EMA_RAMPUPS)}"),
            (ramps, "ema_step and coef_step must be null (the official share of the run) or integers >= 0 (steps)"),
            (isinstance(values["ce_target_product"], bool), "ce_target_product must be true or false"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"[methods.{cls.name}] {message}")

    @classmethod
    def search_space(cls, setting: Setting, hparams: dict[str, Any] | None = None) -> SearchSpace:
        """What ``[tune]`` searches: ELR's two values, with ELR's ranges.

        - ``beta``: uniform on [0.7, 0.99] (``paper-default``): the official README calls beta robust ("0.7, 0.9
          or 0.99").
        - ``lam``: log-uniform on [0.3, 10] (``suite``): the configs use 1, 3 and 7; about half a decade on either
          side, since other datasets may want a weaker or stronger pull.
        """
        return {"beta": Uniform(0.7, 0.99, "paper-default"), "lam": LogUniform(0.3, 10.0, "suite")}

    # ---------------------------------------------------------------- training
    def setup(self, ctx: TrainContext) -> None:
        self.targets = [torch.zeros(ctx.num_train, ctx.num_classes, device=ctx.device) for _ in range(2)]
        self.ema = [fresh_copy(net) for net in ctx.nets]
        self.step = 0
        steps = ctx.epochs * math.ceil(len(ctx.epoch_indices) / ctx.batch_size)
        self.ema_step = self._scaled(self.hp["ema_step"], steps, ctx.num_classes)
        self.coef_step = self._scaled(self.hp["coef_step"], steps, ctx.num_classes)

    @staticmethod
    def _scaled(value: int | None, run_steps: int, num_classes: int) -> int:
        """``value``, or for null the official ramp's share of the official run, of ``run_steps``."""
        if value is not None:
            return int(value)
        paper_epochs = PAPER_EPOCHS[CIFAR_100 if num_classes == 100 else CIFAR_10]
        return max(1, round(RAMP_STEPS * run_steps / (paper_epochs * PAPER_STEPS_PER_EPOCH)))

    def train_epoch(self, ctx: TrainContext, epoch: int) -> dict[str, float]:
        steps = [self._train_net(ctx, k) for k in range(2)]
        self.step += steps[0]
        return {"train_loss": ctx.mean_loss(), "ema_weight": self._weight(self.step)}

    def _weight(self, step: int) -> float:
        return ema_weight(step, self.hp["ema_alpha"], self.ema_step, self.hp["ema_rampup"])

    def _train_net(self, ctx: TrainContext, k: int) -> int:
        """Network ``k``'s pass over the epoch, regularised towards the other network's EMA; its step count."""
        net, own, peer, targets = ctx.nets[k], self.ema[k], self.ema[1 - k], self.targets[k]
        own.train()
        peer.train()
        local = 0
        for batch in ctx.train_batches():
            if len(batch.index) < 2:
                continue
            local += 1
            step = self.step + local
            x = batch.x
            lam, perm = self._mixing(ctx, len(x), x.device)
            logits = net(mixup(x, lam, perm))
            with torch.no_grad():
                rows = update_targets(targets[batch.index], peer(x), self.hp["beta"])
            targets[batch.index] = rows
            onehot = F.one_hot(batch.y, ctx.num_classes).to(logits.dtype)
            ramp = sigmoid_rampup(step, self.coef_step)
            loss = elr_plus_loss(logits, mixup(onehot, lam, perm), mixup(rows, lam, perm), self.hp["lam"], ramp,
                                 self.hp["ce_target_product"])
            ctx.optimize(loss, which=[k])
            ema_update(own, net, self._weight(step))
        return local

    def _mixing(self, ctx: TrainContext, size: int, device: torch.device) -> tuple[float, torch.Tensor]:
        """lambda' = max(lambda, 1 - lambda), lambda ~ Beta(alpha, alpha), and a permutation; no mixing at alpha 0."""
        alpha = self.hp["mixup_alpha"]
        if alpha <= 0:
            return 1.0, torch.arange(size, device=device)
        lam = float(ctx.rng.beta(alpha, alpha))
        return max(lam, 1 - lam), torch.randperm(size, generator=ctx.device_generator, device=device)

    # ---------------------------------------------------------------- evaluation and state
    def predict(self, ctx: TrainContext, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (ctx.nets[0](x) + ctx.nets[1](x))

    def refined_targets(self) -> torch.Tensor:
        return self.targets[0]

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.step}
        for k in range(2):
            state[f"targets_{k}"] = self.targets[k]
            state[f"ema_{k}"] = dict(self.ema[k].state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        for k in range(2):
            self.targets[k] = state[f"targets_{k}"].to(self.targets[k].device)
            self.ema[k].load_state_dict(state[f"ema_{k}"])
