"""PES with semi-supervised learning (Bai et al., NeurIPS 2021), as the official ``PES_semi.py`` (CIFAR) and
``PES_noisylabels.py`` (CIFAR-N) of tmllab/PES @ 5466238 train it. The supervised variant is
:mod:`noisybench.methods.pes`, whose confident split, class weights and refinement it shares.

One network. **Epochs 0..T1-1:** cross-entropy on every sample. **Epoch T1:** the classifier alone is
re-initialised and trained for T2 passes of plain CE with its own Adam (``noisy_refine(model, loader, 0, T2)``),
then the epoch continues as every later one. **Every epoch from T1:** the confident split of PES (two augmented
views in eval mode) makes the confident samples the labelled set X and the others the unlabelled set U. Each of
N // B steps (``PES_semi.py:81``: ``int(50000 / 128)``) draws a labelled batch of b_x samples and an unlabelled batch
of b_u (b_u = B/2 when U is the larger set, else int(|U| / N * B), b_x = B - b_u; ``:176-177``), two augmented views
of each, guesses U's targets as the sharpened mean softmax of its two views (T = 0.5, the network in train mode,
no gradient), mixes all 2(b_x + b_u) rows with one permutation and lambda' = max(lambda, 1 - lambda),
lambda ~ Beta(alpha, alpha), alpha = 4 until half the run and 0.75 from then on (``:72-73``), and minimises
L = sum_c w_c mean_rows(-t_c log p_c) over the labelled rows (:func:`pes_mixmatch_loss`; class weights of PES capped
at 3, ``:192``) + lambda_u r(t) mean((p - t)^2) over the unlabelled rows and classes, with
r(t) = clip((epoch + step / (N // B) - T1) / 16, 0, 1) (``:64-66,132``). No uniform-prior term (unlike DivideMix).

Fidelity decisions:

* **The renewed classifier is never trained again after epoch T1, as in the official code** (the main SGD holds
  the replaced classifier's parameters, ``PES_semi.py:258``): the suite freezes it in place after its refinement
  and re-applies the freeze on resume (see :mod:`noisybench.methods.pes`). For the rest of the run the classifier
  keeps its Adam-refined weights while every other layer trains.
* Guessing runs in train mode (batch statistics, running statistics updated), as the official loop.
* Guards the official code lacks (it raises): with fewer unconfident samples than one unlabelled batch the steps
  use labelled rows only (no L_u); with fewer confident samples than one labelled batch, the labelled batch is the
  whole confident set.

Hyperparameters: T1 = 20 (CIFAR-10 images) / 35 (CIFAR-100 images), T2 = 5 passes, ``pes_lr`` = 1e-4,
T = 0.5, alpha = 4 then 0.75, ramp 16 epochs, weight cap 3 (``PES_semi.py:35-40,219-237``); T1 and the ramp scale
with the run off the paper's schedule, the T2 passes do not, and ``pes_lr`` is 1e-3 on the small built-in datasets
(``suite``), as PES's. lambda_u: 5 on
CIFAR-10N and 75 on CIFAR-100N (``PES_noisylabels.py:249,279``); 15 for CIFAR-10 instance-dependent 40 % and 50 for
CIFAR-100 pair-flip 45 % (the official README's commands); the script's default 150 for other CIFAR settings
(``paper-default``: the paper's per-setting table has not been checked); 15 on datasets no paper ran (``suite``).

Paper recipes: CIFAR-10/100: PreAct ResNet-18 (the suite's ``preact_resnet18`` is the official ``PreActResNet18``:
CIFAR stem with BN-ReLU, no final BN-ReLU), CIFAR-10N/100N: ResNet-34; 300 epochs, SGD lr 0.02, momentum 0.9,
weight decay 5e-4, cosine to lr/100 (``CosineAnnealingLR(T_max=300, eta_min=lr/100)``), batch 128, the whole training
set (no validation split; the paper reports the best test accuracy, the suite's ``best`` metric).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from noisybench.errors import ConfigError
from noisybench.facts import CIFAR_10, CIFAR_10N, CIFAR_100, CIFAR_100N, NoiseKind, Setting
from noisybench.method import HParam, TrainContext, recipe
from noisybench.methods.dividemix import co_guess_targets, linear_rampup
from noisybench.methods.pes import PES, REPO, full_batches, pes_class_weights, refinement_hparams, scaled_epochs
from noisybench.registry import register_method
from noisybench.search_space import Choice, IntUniform, SearchSpace

PES_SEMI = f"{REPO} PES_semi.py"
PES_N = f"{REPO} PES_noisylabels.py"
#: Length of the official schedule that T1, T2 and the ramp belong to.
PAPER_EPOCHS = 300
T1_BY_IMAGES = {CIFAR_10: 20, CIFAR_100: 35}
#: Families the official scripts ran.
PUBLISHED_SEMI = (CIFAR_10, CIFAR_100, CIFAR_10N, CIFAR_100N)
#: lambda_u of the official CIFAR-N script, by family (``PES_noisylabels.py:249,279``).
LAMBDA_U_CIFAR_N = {CIFAR_10N: 5.0, CIFAR_100N: 75.0}
#: The script's default lambda_u and the official README's per-setting commands.
LAMBDA_U_DEFAULT = 150.0
_SEMI_RECIPE = dict(epochs=PAPER_EPOCHS, optimizer="sgd", lr=0.02, momentum=0.9, nesterov=False, weight_decay=5e-4,
                    schedule="cosine", milestones=[], gamma=0.1, eta_min=0.0002, batch_size=128, augment=True,
                    val_fraction=0.0)


def pes_batch_sizes(num_confident: int, num_unconfident: int, batch_size: int) -> tuple[int, int]:
    """Labelled and unlabelled batch sizes (``PES_semi.py:176-177``): b_u = B // 2 when U is the larger set, else
    int(|U| / (|X| + |U|) * B); b_x = B - b_u."""
    if num_unconfident > num_confident:
        unlabelled = int(batch_size / 2)
    else:
        unlabelled = int(num_unconfident / (num_confident + num_unconfident) * batch_size)
    return batch_size - unlabelled, unlabelled


def pes_mixmatch_loss(
    logits: torch.Tensor, mixed_targets: torch.Tensor, num_labelled: int, class_weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """PES-semi's two terms on a mixed batch whose first ``num_labelled`` rows come from the labelled set.

    Returns
    -------
    tuple of torch.Tensor
        ``L_x`` = sum_c w_c mean_rows(-t_c log p_c) over the labelled rows (``PES_semi.py:127-128``) and ``L_u`` =
        the mean over the unlabelled rows and the classes of (p - t)^2 (0 without unlabelled rows).
    """
    per_class = -torch.mean(F.log_softmax(logits[:num_labelled], dim=1) * mixed_targets[:num_labelled], 0)
    loss_x = torch.sum(per_class * class_weights.to(logits.dtype))
    if num_labelled == len(logits):
        return loss_x, logits.new_zeros(())
    probs_u = torch.softmax(logits[num_labelled:], dim=1)
    return loss_x, torch.mean((probs_u - mixed_targets[num_labelled:]) ** 2)


REFERENCE_FUNCTIONS = (pes_batch_sizes, pes_mixmatch_loss)


def _lambda_u(setting: Setting) -> HParam:
    if setting.family in LAMBDA_U_CIFAR_N:
        return HParam(LAMBDA_U_CIFAR_N[setting.family], "paper")
    rate = setting.noise_rate or 0.0
    if setting.family == CIFAR_10 and setting.noise_kind is NoiseKind.INSTANCE_DEPENDENT and abs(rate - 0.4) < 1e-9:
        return HParam(15.0, "paper")
    if setting.family == CIFAR_100 and setting.class_map == "pair" and abs(rate - 0.45) < 1e-9:
        return HParam(50.0, "paper")
    if setting.family in (CIFAR_10, CIFAR_100):
        return HParam(LAMBDA_U_DEFAULT, "paper-default")
    return HParam(15.0, "suite")


@register_method("pes-semi")
class PESSemi(PES):
    """PES with MixMatch: the confident samples labelled, the rest unlabelled, the classifier frozen after T1."""

    display_name = "PES-semi"
    relative_cost = 2.3  # FLOPs of a quick-grid run: 2.31x (MNIST-1D), 2.28x (8x8 digit images) CE
    hparams = {"T1": 20, "T2": 5, "pes_lr": 1e-4, "lambda_u": 15.0, "T": 0.5, "alpha": 4.0, "alpha_late": 0.75,
               "rampup": 16, "weight_cap": 3.0}
    refine_stages = ((1, "T2"),)
    trains_at_refinement = True
    paper_recipes = {
        CIFAR_10: recipe(ref=f"{PES_SEMI}:22-33,58-61,246-262", arch="preact_resnet18", **_SEMI_RECIPE),
        CIFAR_100: recipe(ref=f"{PES_SEMI}:22-33,58-61,246-262", arch="preact_resnet18", **_SEMI_RECIPE),
        CIFAR_10N: recipe(ref=f"{PES_N}:31-41,66-69,287-297", arch="resnet34", **_SEMI_RECIPE),
        CIFAR_100N: recipe(ref=f"{PES_N}:31-41,66-69,287-297", arch="resnet34", **_SEMI_RECIPE),
    }
    deviations = (
        "Guards where the official PES_semi.py raises: with fewer unconfident samples than one unlabelled batch the "
        "steps use labelled rows only (no L_u), and with fewer confident samples than one labelled batch the labelled "
        "batch is the whole confident set.",
        "Sets smaller than one batch (tiny data only) train as one batch; the official drop_last loaders would "
        "yield no batch.",
    )

    reproduced = (
        "The renewed classifier is never trained again after epoch T1: the main SGD (PES_semi.py:258) does not hold "
        "the new module; the suite freezes it in place, also after a resume, while every other layer trains.",
        "Epoch T1 refines the classifier (T2 passes of Adam on plain CE) and then trains its MixMatch epoch "
        "(PES_semi.py:265-273).",
        "N // B steps per epoch (PES_semi.py:81), labelled and unlabelled batch sizes split by the sets' sizes "
        "(:176-177), Beta alpha 4 then 0.75 from half the run (:72-73), class weights capped at 3 (:192), no "
        "uniform-prior term, guesses in train mode.",
    )

    @classmethod
    def default_hparams(cls, setting: Setting) -> dict[str, HParam]:
        fixed = "paper" if setting.family in PUBLISHED_SEMI else "paper-default"
        return {
            "T1": scaled_epochs(T1_BY_IMAGES.get(setting.images, T1_BY_IMAGES[CIFAR_10]), setting, PAPER_EPOCHS),
            "rampup": scaled_epochs(16, setting, PAPER_EPOCHS),
            "lambda_u": _lambda_u(setting),
            **refinement_hparams(setting, {key: cls.hparams[key] for key in ("T2", "pes_lr")}, PUBLISHED_SEMI),
            **{key: HParam(cls.hparams[key], fixed) for key in ("T", "alpha", "alpha_late", "weight_cap")},
        }

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        super().check_hparams(values)
        checks = [
            (values["lambda_u"] >= 0, "lambda_u must be >= 0"),
            (values["T"] > 0, "T must be > 0 (the sharpening temperature)"),
            (values["alpha"] > 0 and values["alpha_late"] > 0, "alpha and alpha_late must be > 0 (Beta parameters)"),
            (isinstance(values["rampup"], int) and values["rampup"] >= 0, "rampup must be an integer >= 0 (epochs)"),
            (values["weight_cap"] > 0, "weight_cap must be > 0 (the largest class weight)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"[methods.{cls.name}] {message}")

    @classmethod
    def search_space(cls, setting: Setting, hparams: dict[str, Any] | None = None) -> SearchSpace:
        """What ``[tune]`` searches (ranges ``suite``).

        - ``lambda_u``: one of {5, 15, 50, 75, 150}, the values the official scripts and README use across CIFAR,
          CIFAR-N and noise types (the weight of the unlabelled term is tied to its scaling, so the published values
          are the natural grid).
        - ``T1``: an integer from 5 % to 20 % of the run's epochs, around the official 6.7 % (CIFAR-10) and 11.7 %
          (CIFAR-100) of 300.
        """
        low = max(1, round(0.05 * setting.epochs))
        high = max(low + 1, round(0.2 * setting.epochs))
        return {"lambda_u": Choice((5.0, 15.0, 50.0, 75.0, 150.0), "suite"), "T1": IntUniform(low, high, "suite")}

    # ---------------------------------------------------------------- training
    def train_selected(self, ctx: TrainContext, epoch: int) -> None:
        """One MixMatch epoch on the confident split (labelled) and the rest (unlabelled)."""
        indices, mask = self.split(ctx)
        num_labelled = int(mask.sum())  # the one read of the split: both sets from one stable sort
        order = indices[torch.argsort((~mask).to(torch.uint8), stable=True)]
        labelled, unlabelled = order[:num_labelled], order[num_labelled:]
        _, weights = pes_class_weights(ctx.y_noisy[indices], mask, ctx.num_classes, cap=self.hp["weight_cap"])
        b_x, b_u = pes_batch_sizes(len(labelled), len(unlabelled), ctx.batch_size)
        b_x, b_u = min(b_x, len(labelled)), b_u if len(unlabelled) >= b_u > 0 else 0
        if b_x < 1:  # no confident sample: nothing to train on this epoch
            return
        alpha = self.hp["alpha"] if epoch < ctx.epochs / 2 else self.hp["alpha_late"]
        num_iter = max(1, len(indices) // ctx.batch_size)
        x_stream = _cycle(ctx, labelled, b_x)
        u_stream = _cycle(ctx, unlabelled, b_u) if b_u else None
        for it in range(num_iter):
            x_raw, y = next(x_stream)
            u_raw = next(u_stream)[0] if u_stream is not None else None
            weight = self.hp["lambda_u"] * linear_rampup(epoch + it / num_iter, self.hp["T1"], self.hp["rampup"])
            loss_x, loss_u = self._step(ctx, x_raw, y, u_raw, weights, alpha)
            loss = loss_x + weight * loss_u
            ctx.optimize(loss)
            self.sums += torch.stack([loss.detach(), loss_x.detach(), loss_u.detach()])
            self.steps += 1
            self.mix_steps += 1

    def _step(self, ctx: TrainContext, x_raw: torch.Tensor, y: torch.Tensor, u_raw: torch.Tensor | None,
              weights: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Guessing, mixing and the two terms of one step (``MixMatch_train``, ``PES_semi.py:95-131``)."""
        net = ctx.nets[0]
        views = [ctx.augment(x_raw), ctx.augment(x_raw)]
        targets_x = F.one_hot(y, ctx.num_classes).to(views[0].dtype)
        targets = [targets_x, targets_x]
        if u_raw is not None:
            u1, u2 = ctx.augment(u_raw), ctx.augment(u_raw)
            with torch.no_grad():
                guess = co_guess_targets([F.softmax(net(u1), dim=1), F.softmax(net(u2), dim=1)], self.hp["T"])
            views += [u1, u2]
            targets += [guess, guess]
        inputs, all_targets = torch.cat(views), torch.cat(targets)
        perm = torch.randperm(len(inputs), generator=ctx.device_generator, device=inputs.device)
        lam = float(ctx.rng.beta(alpha, alpha))
        lam = max(lam, 1 - lam)
        logits = net(lam * inputs + (1 - lam) * inputs[perm])
        mixed = lam * all_targets + (1 - lam) * all_targets[perm]
        return pes_mixmatch_loss(logits, mixed, 2 * len(x_raw), weights)


def _cycle(ctx: TrainContext, indices: torch.Tensor, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless reshuffled passes over ``indices`` in batches of ``size`` (the official iterator restarted at its
    end, ``drop_last=True``): the stored inputs and the noisy labels of each batch."""
    while True:
        for batch in full_batches(ctx, indices, size, augment=False):
            yield batch.raw, batch.y
