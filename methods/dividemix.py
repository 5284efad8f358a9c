"""DivideMix (Li, Socher & Hoi, "DivideMix: Learning with Noisy Labels as Semi-supervised Learning", ICLR 2020),
as in the official code LiJunnan1992/DivideMix @ d9d3058 (``Train_cifar.py``).

Two networks. **Warm-up** (epochs 0..W-1): each network trains on all data with batch 2b on
CE, minus the mean prediction entropy under asymmetric noise (the confidence penalty). **Every
later epoch:** each network computes per-sample CE losses on the un-augmented training set (eval
mode), min-max normalises them (mean of the last 5 epochs' vectors at 90 % noise), and fits a
two-component GMM whose low-mean posterior is the clean probability w. Each network then trains
on the **other** network's division: X = {w > tau} (keeping w), U = the rest. Each step takes b
labelled and b unlabelled samples with two augmentations each: co-refinement of the labels
(w e_y + (1 - w) mean prediction, sharpened with T), co-guessing of U (mean of both networks'
predictions on both views, sharpened), MixMatch with lambda' = max(lambda, 1 - lambda),
lambda ~ Beta(alpha, alpha), and L = L_x + lambda_u r(t) L_u + L_reg, where L_u is a squared error
averaged over rows and classes, r(t) = clip((epoch + iter/num_iter - W) / rampup, 0, 1) and
L_reg = KL(uniform || mean prediction). The test prediction sums both networks' logits.

Suite choices: the GMM gets a ``random_state`` drawn from the run's
per-epoch stream; batches of fewer than two samples are skipped (batch norm needs two); when
fewer than two samples pass the threshold, the two with the highest w form X; when U has fewer
than two samples, U is drawn from the whole training set. Epoch-based values (W, rampup) keep
their paper values on the paper's own schedule (``protocol = "paper"``) and scale with the run's
epochs otherwise (``suite``).

Confidence penalty: on for the dataset's own asymmetric map only, as the official code
(``noise_mode == 'asym'``); off for symmetric noise and, a suite choice, for pair-flip,
instance-dependent and human noise. On the CLOTHING_1M family the official script draws, for **each network
separately**, a fresh class-balanced warm-up subset (``warmup_samples`` = 64,000) and, every later
epoch, a fresh class-balanced subset (``epoch_samples`` = 32,000) on which that network's GMM and
the other network's labelled/unlabelled split are computed.

Paper recipes (``protocol = "paper"``): CIFAR: PreAct ResNet-18, 300 epochs, SGD lr 0.02 (/10 from
epoch 150), wd 5e-4, batch 64 + 64. The official loop runs ``num_epochs + 1`` = 301 passes; the
suite runs the 300 the paper states. CLOTHING_1M: pretrained ResNet-50, 80 epochs, lr 0.002 (/10
from 40), wd 1e-3. WEB_VISION: timm's Inception-ResNet-v2, 80 epochs, lr 0.01 (/10 from 40),
wd 5e-4.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from noisybench.errors import ConfigError
from noisybench.facts import (
    CIFAR_10,
    CIFAR_10N,
    CIFAR_100,
    CIFAR_100N,
    CLOTHING_1M,
    WEB_SCALE,
    WEB_VISION,
    NoiseKind,
    Setting,
)
from noisybench.method import HParam, Method, TrainContext, epoch_hparam, recipe
from noisybench.methods._common import (
    balanced_draw,
    entropy_from_logits,
    is_class_conditional,
    is_published_asym,
    is_symmetric,
    nearest_rate,
    sharpen,
    soft_cross_entropy,
)
from noisybench.registry import register_method
from noisybench.search_space import Choice, SearchSpace, Uniform

if TYPE_CHECKING:
    from torch import nn

#: lambda_u per (family, class-conditional?, rate): the per-setting values of the DivideMix paper's appendix (the
#: official default, 25, fits only some settings: LiJunnan1992/DivideMix@d9d3058 Train_cifar.py:21).
LAMBDA_U = {
    (CIFAR_10, False): {0.2: 0.0, 0.5: 25.0, 0.8: 25.0, 0.9: 50.0},
    (CIFAR_10, True): {0.4: 0.0},
    (CIFAR_100, False): {0.2: 25.0, 0.5: 150.0, 0.8: 150.0, 0.9: 150.0},
}
#: Warm-up epochs of the 300-epoch CIFAR schedule, by the images' family (LiJunnan1992/DivideMix@d9d3058
#: Train_cifar.py:219,221).
WARMUP = {CIFAR_10: 10, CIFAR_100: 30}
#: Families the paper ran on CIFAR images.
PUBLISHED = (CIFAR_10, CIFAR_100)
#: Length of the reference schedule that W and the ramp belong to (``num_epochs`` = 300).
PAPER_EPOCHS = 300
#: Length of the web-scale scripts' schedule that their 1 warm-up epoch belongs to.
WEB_EPOCHS = 80
#: CLOTHING_1M script: per-network class-balanced draws, warm-up 1000 x 64 and per epoch 1000 x 32.
CLOTHING_DRAWS = {"warmup_samples": 64000, "epoch_samples": 32000}
_CIFAR_RECIPE = dict(arch="preact_resnet18", epochs=PAPER_EPOCHS, optimizer="sgd", lr=0.02, momentum=0.9,
                     nesterov=False, weight_decay=5e-4, schedule="step", milestones=[150], gamma=0.1,
                     batch_size=128, augment=True)
#: Share of the run's epochs for W and the lambda_u ramp on datasets the paper never ran.
WARMUP_FRACTION = 0.25
RAMPUP_FRACTION = 0.1


def linear_rampup(progress: float, warmup: int, rampup: int) -> float:
    """r(t) = clip((progress - W) / rampup, 0, 1), with ``progress`` = epoch + iter / num_iter."""
    if rampup <= 0:
        return 1.0 if progress >= warmup else 0.0
    return float(np.clip((progress - warmup) / rampup, 0.0, 1.0))


def normalize_losses(losses: torch.Tensor) -> torch.Tensor:
    """Min-max normalise per-sample losses to [0, 1] (all zeros when they are constant)."""
    span = losses.max() - losses.min()
    if float(span) <= 0:
        return torch.zeros_like(losses)
    return (losses - losses.min()) / span


def gmm_clean_probability(losses: np.ndarray, random_state: int) -> np.ndarray:
    """Posterior of the low-mean component of a two-component GMM fitted to ``losses``.

    Settings as in the reference: ``n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4``,
    otherwise scikit-learn's defaults; ``random_state`` is the suite's addition.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    column = np.asarray(losses, dtype=np.float64).reshape(-1, 1)
    if len(column) < 2 or np.ptp(column) == 0:
        return np.ones(len(column))
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(column)
    return gmm.predict_proba(column)[:, int(gmm.means_.argmin())]


def mixmatch_loss(
    logits: torch.Tensor, mixed_targets: torch.Tensor, num_labelled: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DivideMix's three terms on one mixed batch whose first ``num_labelled`` rows come from X.

    Returns
    -------
    tuple of torch.Tensor
        ``L_x`` (mean soft CE of the labelled rows), ``L_u`` (mean over the unlabelled rows
        **and** the classes of the squared error of the probabilities) and ``L_reg``
        (sum_c pi_c log(pi_c / pbar_c), pi uniform, pbar the mean prediction of all rows).
    """
    probs = F.softmax(logits, dim=1)
    loss_x = soft_cross_entropy(logits[:num_labelled], mixed_targets[:num_labelled]).mean()
    loss_u = ((probs[num_labelled:] - mixed_targets[num_labelled:]) ** 2).mean()
    prior = torch.full((logits.shape[1],), 1.0 / logits.shape[1], device=logits.device, dtype=probs.dtype)
    loss_reg = (prior * torch.log(prior / probs.mean(dim=0))).sum()
    return loss_x, loss_u, loss_reg


def co_guess_targets(probs: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """Co-guessing (``Train_cifar.py`` ``train``): sharpen(mean of the given softmax outputs, T).

    Parameters
    ----------
    probs
        Softmax outputs (B, C) of both networks on both augmented views of the unlabelled batch.
    temperature
        Sharpening temperature T.
    """
    return sharpen(sum(probs) / len(probs), temperature)


def co_refine_targets(
    w: torch.Tensor, labels: torch.Tensor, probs: list[torch.Tensor], temperature: float
) -> torch.Tensor:
    """Co-refinement: sharpen(w e_y + (1 - w) pbar, T), pbar = mean of the current net's softmax over the views.

    Parameters
    ----------
    w
        Clean probabilities (B,) from the other network's GMM.
    labels
        Observed labels (B,).
    probs
        Softmax outputs (B, C) of the network being trained, one per augmented view.
    temperature
        Sharpening temperature T.
    """
    p_bar = sum(probs) / len(probs)
    one_hot = F.one_hot(labels, p_bar.shape[1]).to(p_bar.dtype)
    return sharpen(w[:, None] * one_hot + (1 - w[:, None]) * p_bar, temperature)


#: The pure numerics the method calls, replayable against vectors recorded from the official code.
REFERENCE_FUNCTIONS = (linear_rampup, normalize_losses, gmm_clean_probability, mixmatch_loss, co_guess_targets,
                       co_refine_targets)


def _lambda_u(setting: Setting) -> HParam:
    if setting.family in (CIFAR_10N, CIFAR_100N):  # nearest CIFAR level (suite): C-10N aggre/rand 0,
        if setting.images == CIFAR_100:            # worst 25; C-100N 150
            return HParam(150.0, "suite")
        return HParam(25.0 if setting.noise_arg == "worst" else 0.0, "suite")
    asym = is_class_conditional(setting)
    if setting.family == CIFAR_100 and asym:
        return HParam(150.0, "suite")  # not run by the authors: CIFAR-100's symmetric value
    table = LAMBDA_U[(CIFAR_100 if setting.family == CIFAR_100 else CIFAR_10, asym)]
    value, exact = nearest_rate(setting.noise_rate, table)
    published = setting.family in PUBLISHED and exact and (is_symmetric(setting) or is_published_asym(setting))
    return HParam(value, "paper" if published else "suite")


def _conf_penalty(setting: Setting) -> HParam:
    """On for the dataset's asymmetric map only (official ``noise_mode == 'asym'``); off otherwise."""
    if is_published_asym(setting):
        return HParam(True, "paper" if setting.family in PUBLISHED else "suite")
    if setting.noise_kind in (NoiseKind.SYMMETRIC, NoiseKind.NONE):
        return HParam(False, "paper-default")
    return HParam(False, "suite")  # pair-flip, instance-dependent, human: no paper says


def _p_threshold(setting: Setting, high: bool) -> HParam:
    """0.6 at 90 % symmetric noise, else 0.5; ``paper`` only in settings the paper ran."""
    ran = (setting.family in PUBLISHED and is_symmetric(setting)) or (
        setting.family == CIFAR_10 and is_published_asym(setting))
    return HParam(0.6 if high else 0.5, "paper" if ran else "paper-default")


def _web_scale_hparams(setting: Setting) -> dict[str, HParam]:
    """The official scripts of the web-scale families (:data:`~noisybench.facts.WEB_SCALE`): 1 warm-up
    epoch, lambda_u = 0, alpha = 0.5, batch 32 + 32, and with lambda_u = 0 only the labelled rows are
    mixed (their partners come from all rows). The :data:`~noisybench.facts.CLOTHING_1M` script warms
    up with the confidence penalty, the other one with CE only."""
    draws = CLOTHING_DRAWS if setting.family == CLOTHING_1M else {}
    return {
        "warmup": epoch_hparam(1, setting, "paper", WEB_EPOCHS),
        "rampup": epoch_hparam(16, setting, "paper-default", WEB_EPOCHS), "lambda_u": HParam(0.0, "paper"),
        "p_threshold": HParam(0.5, "paper-default"), "T": HParam(0.5, "paper-default"),
        "alpha": HParam(0.5, "paper"), "batch_size": HParam(32, "paper"),
        "conf_penalty": HParam(setting.family == CLOTHING_1M, "paper"),
        "loss_history": HParam(1, "paper"), "mix_labelled_only": HParam(True, "paper"),
        **{key: HParam(draws.get(key, 0), "paper") for key in CLOTHING_DRAWS},
    }


@register_method("dividemix")
class DivideMix(Method):
    """Two networks, GMM co-divide, co-refinement, co-guessing and MixMatch."""
    display_name = "DivideMix"

    num_networks = 2
    relative_cost = 5.0  # measured: 4.4x to 5.3x a CE run on the built-in CPU datasets
    hparams = {
        "warmup": 10, "rampup": 16, "lambda_u": 25.0, "p_threshold": 0.5, "T": 0.5, "alpha": 4.0,
        "batch_size": None, "conf_penalty": False, "loss_history": 1, "mix_labelled_only": False,
        "warmup_samples": 0, "epoch_samples": 0,
    }
    paper_recipes = {
        CIFAR_10: recipe(**_CIFAR_RECIPE),
        CIFAR_100: recipe(**_CIFAR_RECIPE),
        CLOTHING_1M: recipe(arch="resnet50", epochs=WEB_EPOCHS, optimizer="sgd", lr=0.002, momentum=0.9,
                            nesterov=False, weight_decay=1e-3, schedule="step", milestones=[40], gamma=0.1,
                            batch_size=64, augment=True),
        WEB_VISION: recipe(arch="inception_resnet_v2", epochs=WEB_EPOCHS, optimizer="sgd", lr=0.01, momentum=0.9,
                           nesterov=False, weight_decay=5e-4, schedule="step", milestones=[40], gamma=0.1,
                           batch_size=64, augment=True),
    }

    @classmethod
    def default_hparams(cls, setting: Setting) -> dict[str, HParam]:
        if setting.family in WEB_SCALE:
            return _web_scale_hparams(setting)
        cifar = setting.family in PUBLISHED
        on_cifar_images = setting.images in PUBLISHED
        high = (setting.noise_rate or 0.0) >= 0.9 and is_symmetric(setting)
        if on_cifar_images:
            # W and the ramp belong to the 300-epoch schedule: keep their share of other lengths.
            warmup = epoch_hparam(WARMUP[setting.images], setting, "paper", PAPER_EPOCHS)
            rampup = epoch_hparam(16, setting, "paper", PAPER_EPOCHS)
        else:
            warmup = HParam(max(1, int(round(WARMUP_FRACTION * setting.epochs))), "suite")
            rampup = HParam(max(1, int(round(RAMPUP_FRACTION * setting.epochs))), "suite")
        return {
            "warmup": warmup, "rampup": rampup, "lambda_u": _lambda_u(setting),
            "p_threshold": _p_threshold(setting, high),
            "T": HParam(0.5, "paper-default"), "alpha": HParam(4.0, "paper-default"),
            "batch_size": HParam(64 if on_cifar_images else None,
                                 "paper-default" if cifar else "suite"),
            "conf_penalty": _conf_penalty(setting),
            "loss_history": HParam(5 if high else 1, "paper-default"),
            "mix_labelled_only": HParam(False, "paper-default"),
            "warmup_samples": HParam(0, "paper-default"), "epoch_samples": HParam(0, "paper-default"),
        }

    @classmethod
    def search_space(cls, setting: Setting, hparams: Mapping[str, Any] | None = None) -> SearchSpace:
        """What ``[tune]`` searches: lambda_u, tau and T (ranges ``suite``; the paper publishes its choices per
        setting, not a sensitivity study).

        - ``lambda_u``: one of {0, 25, 50, 150}, the values the paper's Appendix B chose across its CIFAR
          settings (0 at low noise, 150 on CIFAR-100); the weight of the unlabelled loss is tied to the loss's
          scaling, so the published values are the natural grid.
        - ``p_threshold`` (tau): uniform on [0.4, 0.7], around the paper's 0.5 (0.6 at 90 % noise).
        - ``T``: uniform on [0.25, 0.75], around the official default 0.5 of the sharpening temperature.
        """
        return {"lambda_u": Choice((0.0, 25.0, 50.0, 150.0), "suite"), "p_threshold": Uniform(0.4, 0.7, "suite"),
                "T": Uniform(0.25, 0.75, "suite")}

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        checks = [
            (isinstance(values["warmup"], int) and values["warmup"] >= 0, "warmup must be an integer >= 0 (epochs)"),
            (values["rampup"] >= 0, "rampup must be >= 0 (epochs)"),
            (values["lambda_u"] >= 0, "lambda_u must be >= 0"),
            (0 <= values["p_threshold"] <= 1, "p_threshold must be in [0, 1]"),
            (values["T"] > 0, "T must be > 0"),
            (values["alpha"] > 0, "alpha must be > 0"),
            (values["batch_size"] is None or (isinstance(values["batch_size"], int) and values["batch_size"] >= 2),
             "batch_size must be null (half the profile's batch size) or an integer >= 2"),
            (isinstance(values["loss_history"], int) and values["loss_history"] >= 1,
             "loss_history must be an integer >= 1"),
            *((isinstance(values[key], int) and values[key] >= 0,
               f"{key} must be an integer >= 0 (0: every sample of the epoch)") for key in CLOTHING_DRAWS),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"[methods.dividemix] {message}")

    # ---------------------------------------------------------------- training
    def setup(self, ctx: TrainContext) -> None:
        self.b = int(self.hp["batch_size"] or max(2, ctx.batch_size // 2))
        self.loss_hist: list[torch.Tensor] = [torch.zeros(0, ctx.num_train, device=ctx.device) for _ in range(2)]
        self.selected: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # (pool, mask) per network
        self._num_train, self._device = ctx.num_train, ctx.device

    def train_epoch(self, ctx: TrainContext, epoch: int) -> dict[str, float]:
        self._sums = torch.zeros(3, device=ctx.device)
        self._steps = 0
        if epoch < self.hp["warmup"]:
            self.selected = None
            for k in range(2):
                self._warmup(ctx, k, self._draw(ctx, self.hp["warmup_samples"]))
            return {"train_loss": ctx.mean_loss()}
        # Each network's pool: the epoch's samples, or its own class-balanced draw (CLOTHING_1M script).
        pools = [self._draw(ctx, self.hp["epoch_samples"]).to(ctx.device) for _ in range(2)]
        clean_prob = [self._clean_probability(ctx, k, pools[k]) for k in range(2)]
        self.selected = [(pool, p > self.hp["p_threshold"]) for pool, p in zip(pools, clean_prob)]
        for k in range(2):  # network k trains on the other network's pool and division
            self._train_net(ctx, epoch, k, pools[1 - k], clean_prob[1 - k])
        means = (self._sums / max(1, self._steps)).tolist()
        return {"train_loss": ctx.mean_loss(), "loss_x": means[0], "loss_u": means[1], "lambda_u_eff": means[2]}

    def _draw(self, ctx: TrainContext, num_samples: int) -> torch.Tensor:
        """``num_samples`` of the epoch's samples, class-balanced by noisy label (all of them for 0)."""
        pool = ctx.epoch_indices
        if not num_samples:
            return pool
        labels = ctx.y_noisy.cpu()[pool].numpy()
        return pool[torch.as_tensor(balanced_draw(labels, num_samples, ctx.num_classes, ctx.rng))]

    def _warmup(self, ctx: TrainContext, k: int, indices: torch.Tensor) -> None:
        net = ctx.nets[k]
        for batch in ctx.train_batches(2 * self.b, indices=indices):
            if len(batch.index) < 2:
                continue
            logits = net(batch.x)
            loss = F.cross_entropy(logits, batch.y)
            if self.hp["conf_penalty"]:
                loss = loss - entropy_from_logits(logits).mean()
            ctx.optimize(loss, which=[k])

    def _clean_probability(self, ctx: TrainContext, k: int, pool: torch.Tensor) -> torch.Tensor:
        """GMM clean probability of the samples ``pool`` under network ``k``.

        With a per-epoch subset (a web-scale dataset's draw) the GMM sees that subset only and no loss history,
        as in the reference; otherwise the whole training set and the last ``loss_history`` epochs.
        """
        subset = len(pool) != ctx.num_train
        logits = ctx.predict_train(ctx.nets[k], pool if subset else None)
        losses = normalize_losses(F.cross_entropy(logits, ctx.y_noisy[pool], reduction="none"))
        if subset:
            hist = losses[None]
        else:
            hist = torch.cat([self.loss_hist[k], losses[None]])[-self.hp["loss_history"]:]
            self.loss_hist[k] = hist
        seed = int(ctx.rng.integers(2**31 - 1))
        prob = gmm_clean_probability(hist.mean(dim=0).cpu().numpy(), seed)
        return torch.as_tensor(prob, dtype=torch.float32, device=ctx.device)

    def _split(self, ctx: TrainContext, pool: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Co-divide ``pool``: labelled X = {w > tau}, unlabelled U = the rest (with the fallbacks above)."""
        mask = w > self.hp["p_threshold"]
        if int(mask.sum()) < 2:
            mask = torch.zeros_like(mask)
            mask[torch.topk(w, min(2, len(w))).indices] = True
        labelled, unlabelled = pool[mask], pool[~mask]
        if len(unlabelled) < 2:
            unlabelled = pool
        return labelled, unlabelled

    def _cycle(self, ctx: TrainContext, indices: torch.Tensor) -> Iterator[torch.Tensor]:
        """Endless shuffled batches of ``indices`` (full batches when there are enough samples)."""
        size = min(self.b, len(indices))
        while True:
            for batch in ctx.train_batches(size, indices=indices, augment=False, drop_last=True):
                yield batch.raw

    def _train_net(self, ctx: TrainContext, epoch: int, k: int, pool: torch.Tensor, w_pool: torch.Tensor) -> None:
        net, other = ctx.nets[k], ctx.nets[1 - k]
        labelled, unlabelled = self._split(ctx, pool, w_pool)
        w = torch.zeros(ctx.num_train, device=ctx.device)
        w[pool] = w_pool
        num_iter = len(labelled) // self.b + 1
        u_stream = self._cycle(ctx, unlabelled)
        other.eval()
        try:
            for it, batch in enumerate(ctx.train_batches(self.b, indices=labelled, augment=False)):
                if len(batch.index) < 2:
                    continue
                ramp = linear_rampup(epoch + it / num_iter, self.hp["warmup"], self.hp["rampup"])
                loss = self._step(ctx, net, other, batch.raw, batch.y, w[batch.index], next(u_stream), ramp)
                ctx.optimize(loss, which=[k])
        finally:
            other.train()

    def _step(
        self, ctx: TrainContext, net: nn.Module, other: nn.Module, x_raw: torch.Tensor, y: torch.Tensor,
        w: torch.Tensor, u_raw: torch.Tensor, ramp: float,
    ) -> torch.Tensor:
        """One DivideMix step: co-guessing, co-refinement, MixMatch and the three losses."""
        x1, x2, u1, u2 = ctx.augment(x_raw), ctx.augment(x_raw), ctx.augment(u_raw), ctx.augment(u_raw)
        temperature = self.hp["T"]
        with torch.no_grad():
            guesses = [F.softmax(f(u), dim=1) for f in (net, other) for u in (u1, u2)]
            targets_u = sharpen(sum(guesses) / 4, temperature)
            p_x = (F.softmax(net(x1), dim=1) + F.softmax(net(x2), dim=1)) / 2
            w = w[:, None]
            targets_x = sharpen(w * F.one_hot(y, ctx.num_classes).float() + (1 - w) * p_x, temperature)
        lam = float(ctx.rng.beta(self.hp["alpha"], self.hp["alpha"]))
        lam = max(lam, 1 - lam)
        inputs = torch.cat([x1, x2, u1, u2])
        targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
        perm = torch.randperm(len(inputs), generator=ctx.device_generator, device=inputs.device)
        # Web-scale protocol: only the labelled rows are mixed and trained (partners from all rows).
        rows = 2 * len(x_raw) if self.hp["mix_labelled_only"] else len(inputs)
        logits = net(lam * inputs[:rows] + (1 - lam) * inputs[perm[:rows]])
        mixed = lam * targets[:rows] + (1 - lam) * targets[perm[:rows]]
        if rows == len(inputs):
            loss_x, loss_u, loss_reg = mixmatch_loss(logits, mixed, 2 * len(x_raw))
        else:
            loss_x, _, loss_reg = mixmatch_loss(logits, mixed, rows)
            loss_u = torch.zeros((), device=logits.device)
        weight = self.hp["lambda_u"] * ramp
        # new_full fills on the device (no host-to-device copy per step, unlike torch.tensor)
        self._sums += torch.stack([loss_x.detach(), loss_u.detach(), loss_x.new_full((), weight)])
        self._steps += 1
        return loss_x + weight * loss_u + loss_reg

    # ---------------------------------------------------------------- evaluation and state
    def predict(self, ctx: TrainContext, x: torch.Tensor) -> torch.Tensor:
        return ctx.nets[0](x) + ctx.nets[1](x)

    def selection(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.selected is None:  # warm-up: every sample is used by both networks
            everyone = torch.arange(self._num_train, device=self._device)
            ones = torch.ones(self._num_train, dtype=torch.bool, device=self._device)
            return torch.cat([everyone, everyone]), torch.cat([ones, ones])
        return torch.cat([pool for pool, _ in self.selected]), torch.cat([mask for _, mask in self.selected])

    def state_dict(self) -> dict[str, Any]:
        return {"loss_hist_0": self.loss_hist[0], "loss_hist_1": self.loss_hist[1]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss_hist = [state[f"loss_hist_{k}"] for k in range(2)]
