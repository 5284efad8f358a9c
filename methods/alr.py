"""ALR: adaptive label refinement (Zhang, Cheng, Lu, Zhou, Li, Zhang; "Efficient Adaptive Label Refinement",
arXiv 2502.00386, 2025), **the suite's reconstruction** on top of SELC (:mod:`noisybench.methods.selc`).

The ALR paper (Zhang et al., arXiv 2502.00386, 2025) publishes no code, and its method section
has not been checked. What this file implements is our reading of the abstract: "SELC plus
entropy minimisation on the predictions". Its exact coefficients (E_w, m, lambda_H and every
variant below) are **our reconstruction, not the paper's values**; every value is tagged
``suite``.

Algorithm. Soft labels T (N x C) start one-hot at the observed labels.

* Epochs e < E_w (``warmup_end``): plain cross-entropy on the observed labels.
* Epochs e >= E_w, every iteration, for the batch rows I: t_i <- m t_i + (1 - m) sg(p_i) (train
  mode forward on the augmented view, no clamp, before the loss; SELC), then
  L = mean CE(t_i, p_i) + lambda_H(e) mean [mask_i H(p_i)].

Options (grid keys under ``[methods.alr]``):

* ``entropy_on = "pred"`` (default): the entropy term acts on the predictions, sharpening the
  confident ones that feed the EMA. ``"targets"`` (variant C): no entropy loss; after each EMA
  step, rows whose max t_ic >= ``entropy_threshold`` (all rows when it is null) become
  sharpen(t_i, ``sharpen_T``).
* ``entropy_threshold`` (variant B, default null): with ``"pred"``, the entropy term counts only
  rows whose refined target is confident, max_c t_ic >= threshold (mask_i above).
* ``entropy_ramp`` (variant D, default 0): lambda_H grows linearly from 0 at E_w to its full
  value at E_w + ramp epochs; 0 means no ramp.
* ``ema_granularity = "iteration"`` (default, SELC) or ``"epoch"``: refresh T once at the start
  of each epoch >= E_w from an eval pass without augmentation.

Sanity properties (unit-tested): lambda_H = 0 is SELC's plain EMA refinement; E_w >= epochs is
CE; m = 1 with lambda_H = 0 keeps T one-hot, i.e. CE.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from noisybench.errors import ConfigError
from noisybench.facts import CIFAR_10N, CIFAR_100N, Setting
from noisybench.method import Batch, HParam, Method, TrainContext, scale_epochs
from noisybench.methods._common import PerSampleTargets, is_class_conditional, nearest_rate, sharpen
from noisybench.methods.selc import SELC_EPOCHS, SELC_ES, selc_update_targets, soft_label_nll
from noisybench.registry import register_method
from noisybench.search_space import IntUniform, LogUniform, SearchSpace, Uniform

#: SELC's ``es`` (:data:`noisybench.methods.selc.SELC_ES`, its 200-epoch schedule ``SELC_EPOCHS``), adopted for ALR
#: as a suite convention; CIFAR-N rows are one value each, chosen by the suite (SELC never ran CIFAR-N).
SELC_ES_HUMAN = {CIFAR_10N: 40, CIFAR_100N: 30}
#: E_w as a share of the run's epochs for datasets SELC never ran (SELC: 30-40 of 200 epochs, before the first lr drop).
WARMUP_FRACTION = 0.2

#: SELC's EMA step t <- m t + (1 - m) sg(p), unchanged (:func:`noisybench.methods.selc.selc_update_targets`).
alr_update_targets = selc_update_targets


def alr_loss(
    logits: torch.Tensor, targets: torch.Tensor, lambda_h: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """mean_i CE(t_i, p_i) + lambda_H mean_i [mask_i H(p_i)].

    Parameters
    ----------
    logits
        Network outputs (B, C).
    targets
        Refined soft labels (B, C), treated as constants.
    lambda_h
        Entropy weight.
    mask
        Optional boolean (B,): rows the entropy term applies to (the mean still divides by B).

    Returns
    -------
    torch.Tensor
        The scalar loss.
    """
    log_p = F.log_softmax(logits, dim=1)
    loss = soft_label_nll(log_p, targets)  # SELC's loss
    if lambda_h == 0:
        return loss
    ent = -(log_p.exp() * log_p).sum(dim=1)
    if mask is not None:
        ent = ent * mask.to(ent.dtype)
    return loss + lambda_h * ent.mean()


def entropy_weight(lambda_h: float, epoch: int, warmup_end: int, ramp: int) -> float:
    """lambda_H at ``epoch``: linear from 0 at E_w to full at E_w + ramp (no ramp when 0)."""
    if ramp <= 0:
        return lambda_h
    return lambda_h * min(1.0, max(0.0, (epoch - warmup_end) / ramp))


#: The pure numerics the method calls; at lambda_H = 0 they are SELC's (its reference formulas replay through them).
REFERENCE_FUNCTIONS = (alr_update_targets, alr_loss, entropy_weight)


@register_method("alr")
class ALR(PerSampleTargets, Method):
    """Adaptive label refinement (suite reconstruction): SELC EMA soft labels plus entropy minimisation."""
    display_name = "ALR"

    hparams = {
        "warmup_end": 10, "momentum": 0.9, "lambda_h": 0.1, "entropy_on": "pred",
        "entropy_threshold": None, "entropy_ramp": 0, "ema_granularity": "iteration", "sharpen_T": 0.5,
    }

    @classmethod
    def default_hparams(cls, setting: Setting) -> dict[str, HParam]:
        values = {k: HParam(v, "suite") for k, v in cls.hparams.items()}
        if setting.family in SELC_ES:
            warmup, _ = nearest_rate(setting.noise_rate, SELC_ES[setting.family][is_class_conditional(setting)])
        elif setting.family in SELC_ES_HUMAN:
            warmup = SELC_ES_HUMAN[setting.family]
        else:
            warmup = None
        if warmup is None:
            value = max(1, int(round(WARMUP_FRACTION * setting.epochs)))
        else:  # SELC's E_w belongs to its 200-epoch schedule: keep its share of a shorter or longer run.
            value = scale_epochs(int(warmup), SELC_EPOCHS, setting.epochs, "suite").value
        values["warmup_end"] = HParam(value, "suite")
        return values

    @classmethod
    def search_space(cls, setting: Setting, hparams: Mapping[str, Any] | None = None) -> SearchSpace:
        """What ``[tune]`` searches: E_w, m and lambda_H, all ``suite`` (the paper publishes none of ALR's
        coefficients; these ranges are ours, around the SELC values the reconstruction starts from).

        - ``warmup_end`` (E_w): integers from 10 % to 40 % of the run's epochs (at least 1 and 2). SELC's
          ``es`` is 20 to 40 of 200 epochs (10 % to 20 %) and our default for other datasets is 20 %; the range
          also tries later starts, as refinement can begin too early on a short schedule.
        - ``momentum`` (m): uniform on [0.7, 0.99]; SELC uses 0.9 (0.8 on its web-scale clothing benchmark).
        - ``lambda_h`` (lambda_H): log-uniform on [0.01, 0.5], the values a sweep of the entropy weight tried
          before tuning budgets existed ({0.01, 0.05, 0.1, 0.2, 0.5}). With ``entropy_on = "targets"`` there is
          no entropy loss, so ``sharpen_T`` (uniform on [0.25, 0.75], around the 0.5 of the sharpening
          MixMatch and DivideMix use) takes its place.
        """
        values = hparams or cls.hparams
        low = max(1, int(round(0.1 * setting.epochs)))
        high = max(low + 1, int(round(0.4 * setting.epochs)))
        space: SearchSpace = {"warmup_end": IntUniform(low, high, "suite"), "momentum": Uniform(0.7, 0.99, "suite")}
        if values.get("entropy_on", "pred") == "targets":
            space["sharpen_T"] = Uniform(0.25, 0.75, "suite")
        else:
            space["lambda_h"] = LogUniform(0.01, 0.5, "suite")
        return space

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        checks = [
            (isinstance(values["warmup_end"], int) and values["warmup_end"] >= 0, "warmup_end must be an integer >= 0"),
            (0 <= values["momentum"] <= 1, "momentum must be in [0, 1]"),
            (values["lambda_h"] >= 0, "lambda_h must be >= 0"),
            (values["entropy_on"] in ("pred", "targets"), "entropy_on must be 'pred' or 'targets'"),
            (values["entropy_threshold"] is None or values["entropy_threshold"] >= 0,
             "entropy_threshold must be null or a number >= 0"),
            (isinstance(values["entropy_ramp"], int) and values["entropy_ramp"] >= 0,
             "entropy_ramp must be an integer >= 0 (epochs)"),
            (values["ema_granularity"] in ("iteration", "epoch"), "ema_granularity must be 'iteration' or 'epoch'"),
            (values["sharpen_T"] > 0, "sharpen_T must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"[methods.alr] {message}")

    def setup(self, ctx: TrainContext) -> None:
        self.targets = F.one_hot(ctx.y_noisy, ctx.num_classes).float()

    def train_epoch(self, ctx: TrainContext, epoch: int) -> dict[str, float]:
        if epoch >= self.hp["warmup_end"] and self.hp["ema_granularity"] == "epoch":
            probs = F.softmax(ctx.predict_train(ctx.nets[0]), dim=1)
            self.targets = self._refine(self.targets, probs)
        return super().train_epoch(ctx, epoch)

    def training_step(self, ctx: TrainContext, batch: Batch, epoch: int) -> torch.Tensor:
        logits = ctx.nets[0](batch.x)
        if epoch < self.hp["warmup_end"]:
            return F.cross_entropy(logits, batch.y)
        targets = self.targets[batch.index]
        if self.hp["ema_granularity"] == "iteration":
            targets = self._refine(targets, F.softmax(logits, dim=1))
            self.targets[batch.index] = targets
        if self.hp["entropy_on"] == "targets":
            return alr_loss(logits, targets, 0.0)
        weight = entropy_weight(self.hp["lambda_h"], epoch, self.hp["warmup_end"], self.hp["entropy_ramp"])
        return alr_loss(logits, targets, weight, self._confident(targets))

    def _refine(self, targets: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """EMA step, then (targets variant) sharpen the confident rows."""
        new = alr_update_targets(targets, probs, self.hp["momentum"])
        if self.hp["entropy_on"] == "targets":
            mask = self._confident(new)
            sharp = sharpen(new, self.hp["sharpen_T"])
            new = torch.where(mask[:, None], sharp, new) if mask is not None else sharp
        return new

    def _confident(self, targets: torch.Tensor) -> torch.Tensor | None:
        threshold = self.hp["entropy_threshold"]
        return None if threshold is None else targets.max(dim=1).values >= threshold
