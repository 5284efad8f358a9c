"""PES: progressive early stopping (Bai, Yang, Han, Yang, Li, Mao, Niu, Liu; NeurIPS 2021), as the official
``PES_cs.py`` of tmllab/PES @ 5466238 trains it. The semi-supervised variant is :mod:`noisybench.methods.pes_semi`.

One network. **Epochs 0..T1-1:** cross-entropy on every sample. **Epoch T1:** no regular training; instead the
network is refined in two stages (``noisy_refine``, ``PES_cs.py:105-125``, ``176-177``): the last stage and the
classifier are re-initialised (``networks/ResNet.py:168-185``), everything else is frozen, and T2 passes of plain,
unweighted CE over the whole noisy training set train them with their own Adam (lr ``pes_lr``, PyTorch's defaults
otherwise); then the classifier alone is re-initialised and trained for T3 passes with a new Adam. **Every later
epoch:** the mean softmax of two augmented views of every training sample in eval mode (``update_trainloader``,
``common/tools.py:177-191``) decides the confident set, the samples whose prediction equals their noisy label
(:func:`pes_confident_mask`); the network trains on that set (batches of the recipe's size, the last partial one
dropped) with CE weighted per class by the mean non-zero class count over the class's count, empty classes 0
(:func:`pes_class_weights`, :func:`pes_weighted_ce`).

Fidelity decisions (each in :attr:`PES.deviations` where the suite departs; ``noisybench plan`` prints them):

* **The renewed layers are never trained again after epoch T1, as in the official code.** ``renew_layers`` builds
  new modules, but the main SGD was built once over the original parameters (``PES_cs.py:165``) and is never
  rebuilt, so for the rest of the run the last stage and the classifier keep their Adam-refined values (their batch
  norm statistics still move). The suite re-initialises those layer groups in place (``layer_groups()``: the
  classifier and the group before it, the last stage of a ResNet; PyTorch's default initialisation, as a new
  module gets) and then freezes them (no gradient, so the recipe's optimiser skips them: no step, no momentum, no
  weight decay, exactly as the official optimiser that no longer holds them). The freeze is re-applied when a run
  resumes after epoch T1 (``requires_grad`` is not part of a checkpoint). Earlier layers keep training. The first
  group is never renewed: on a network of only two groups (a one-hidden-layer MLP) the first stage renews the
  classifier alone.
* The two refinement stages run inside epoch T1, which trains nothing else; the recipe's schedule still counts it.
* The official refinement first runs a confident-set prediction pass and discards its result (``PES_cs.py:109``):
  the suite skips that pass (it changes no state, only random draws and compute).
* Validation: the official script holds out 10 % **uniformly at random** (``common/NoisyUtil.py:52-55``) and
  evaluates it with the training augmentation (``PES_cs.py:160``); the suite keeps its own 10 % noisy split,
  stratified by the observed label and evaluated un-augmented, the same split every method of a grid uses. The
  paper reports the test accuracy at the best validation epoch (the suite's ``val`` metric).
* Data order: every pass drops the last partial batch, as the official loaders (``drop_last=True``). A set smaller
  than one batch (only on tiny data) trains as one batch instead of not at all (the official loader yields none).

Hyperparameters: T1 = 25 (CIFAR-10) / 30 (CIFAR-100), T2 = 7, T3 = 5 refinement passes, ``pes_lr`` = 1e-4
(``PES_cs.py:35-38,128-155``). T1 keeps its value on the paper's 200-epoch schedule and scales with the run's length
otherwise (``suite``: 12.5 % / 15 % of the run; other datasets the CIFAR-10 share). T2 and T3 keep the official
values everywhere (``paper-default`` off CIFAR): they count the refinement's own passes over the data, not epochs of
the schedule. ``pes_lr`` is 1e-3 on the small built-in datasets (``suite``): their passes have 12-18 times fewer
batches than CIFAR's, and at 1e-4 the renewed layers, frozen afterwards, would stay near their initialisation.

Paper recipes (``protocol = "paper"``): CIFAR-10: ResNet-18 (BasicBlock, CIFAR stem), CIFAR-100: ResNet-34; 200
epochs, SGD lr 0.1, momentum 0.9, weight decay 1e-4, lr x0.1 at epochs 100 and 150, batch 128, random crop and
flip, 90 % of the training set (``PES_cs.py:22-25,56-61,128-166``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from noisybench.errors import ConfigError
from noisybench.facts import CIFAR_10, CIFAR_100, Setting
from noisybench.method import Batch, HParam, Method, TrainContext, epoch_hparam, recipe
from noisybench.registry import register_method
from noisybench.search_space import IntUniform, LogUniform, SearchSpace

#: Where PES's values come from (official repository, file, lines).
REPO = "tmllab/PES@5466238"
PES_CS = f"{REPO} PES_cs.py"
#: Length of the official schedule that T1 belongs to.
PAPER_EPOCHS = 200
#: T1 by the images' family (``PES_cs.py:128-131,142-145``).
T1_BY_FAMILY = {CIFAR_10: 25, CIFAR_100: 30}
PUBLISHED = (CIFAR_10, CIFAR_100)
_CIFAR_RECIPE = dict(epochs=PAPER_EPOCHS, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
                     schedule="step", milestones=[100, 150], gamma=0.1, batch_size=128, augment=True,
                     val_fraction=0.1)


# ---------------------------------------------------------------------------- reference functions
def pes_confident_mask(probs: torch.Tensor, noisy_labels: torch.Tensor) -> torch.Tensor:
    """The confident samples (``splite_confident``): those whose predicted class is their noisy label.

    Parameters
    ----------
    probs
        Mean softmax of the two augmented views, shape (N, C); the prediction is its argmax (the first class
        among equal maxima, as ``torch.max``).
    noisy_labels
        Observed labels (N,), int64.

    Returns
    -------
    torch.Tensor
        Boolean mask (N,); ``mask.nonzero()`` gives the official ascending ``confident_indexs``.
    """
    return probs.argmax(dim=1) == noisy_labels


def pes_class_weights(
    noisy_labels: torch.Tensor, confident_mask: torch.Tensor, num_classes: int, cap: float | None = None,
    *, dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class counts of the confident set and the CE class weights (``update_trainloader``, lines 90-101).

    w_c = mean of the non-zero counts / n_c, computed in float64 as numpy does; empty classes get exactly 0 (the
    official ``inf -> 0``); then, with ``cap`` (PES-semi: 3), weights above it become ``cap`` (empty classes stay 0).
    Without any confident sample every weight is 0 (the official mean of no count is NaN; it weighs no batch).

    Parameters
    ----------
    noisy_labels
        Observed labels (N,).
    confident_mask
        Boolean mask (N,) of the confident samples.
    num_classes
        C.
    cap
        Largest weight, or None for none.
    dtype
        Dtype of the returned weights (the official ``torch.FloatTensor``: float32).

    Returns
    -------
    tuple of torch.Tensor
        Counts (C,) int64 and weights (C,) in ``dtype``, on the labels' device.
    """
    counts = torch.zeros(num_classes, dtype=torch.int64, device=noisy_labels.device)
    counts.scatter_add_(0, noisy_labels, confident_mask.to(torch.int64))  # no host synchronisation
    present = counts > 0
    # numpy's mean of the non-zero counts: their exact integer sum over their number (NaN without any: unused)
    mean = counts.sum().to(torch.float64) / present.sum().to(torch.float64)
    zero = torch.zeros((), dtype=torch.float64, device=counts.device)
    weights = torch.where(present, mean / counts.to(torch.float64).clamp(min=1), zero)
    if cap is not None:
        weights = weights.clamp(max=cap)
    return counts, weights.to(dtype)


def pes_weighted_ce(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """Class-weighted CE as ``nn.CrossEntropyLoss(weight=w)``: sum_i w_{y_i} CE_i / sum_i w_{y_i}.

    Parameters
    ----------
    logits
        Network outputs (B, C); the loss is computed in their dtype.
    labels
        Noisy labels (B,).
    class_weights
        Weights (C,) from :func:`pes_class_weights`.
    """
    return F.cross_entropy(logits, labels, weight=class_weights.to(logits.dtype))


REFERENCE_FUNCTIONS = (pes_confident_mask, pes_class_weights, pes_weighted_ce)


# ---------------------------------------------------------------------------- layer groups
def reinitialise(modules: Sequence[nn.Module]) -> None:
    """Re-initialise ``modules`` in place with PyTorch's default initialisation (what a new module gets): every
    submodule with ``reset_parameters`` (convolutions, linear layers, batch norm with its running statistics)."""
    for group in modules:
        for module in group.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()


def parameters_of(modules: Sequence[nn.Module]) -> list[nn.Parameter]:
    """The distinct parameters of ``modules``, in order."""
    seen: dict[int, nn.Parameter] = {}
    for module in modules:
        for param in module.parameters():
            seen.setdefault(id(param), param)
    return list(seen.values())


def train_only(net: nn.Module, params: Sequence[nn.Parameter]) -> None:
    """Let gradients reach ``params`` only (every other parameter of ``net`` frozen)."""
    chosen = {id(p) for p in params}
    for param in net.parameters():
        param.requires_grad_(id(param) in chosen)


def full_batches(ctx: TrainContext, indices: torch.Tensor | None = None, batch_size: int | None = None,
                 augment: bool = True) -> Iterator[Batch]:
    """Shuffled batches of ``indices`` (default: the epoch's) without the last partial one, as the official
    ``drop_last=True`` loaders; fewer samples than one batch (tiny data) form one batch, fewer than two none."""
    size = len(ctx.epoch_indices if indices is None else indices)
    bs = batch_size or ctx.batch_size
    if size >= bs:
        return ctx.train_batches(bs, indices=indices, augment=augment, drop_last=True)
    if size >= 2:
        return ctx.train_batches(size, indices=indices, augment=augment)
    return iter(())


def two_view_probs(ctx: TrainContext, net: nn.Module, indices: torch.Tensor) -> torch.Tensor:
    """Mean softmax of two augmented views of the training samples ``indices`` (in that order), in eval mode
    without gradients (``predict_softmax`` on the training transform)."""
    was_training = net.training
    net.eval()
    out = []
    try:
        with torch.no_grad():
            for batch in ctx.train_batches(2 * ctx.batch_size, indices=indices, shuffle=False, augment=True):
                first = F.softmax(net(batch.x), dim=1)
                out.append((first + F.softmax(net(ctx.augment(batch.raw)), dim=1)) / 2)
    finally:
        net.train(was_training)
    if not out:
        return torch.empty(0, ctx.num_classes, device=ctx.device)
    return torch.cat(out)


def _depth(depth: int, groups: Sequence[nn.Module]) -> int:
    """How many groups from the output a stage renews: ``depth``, but never the first group (a network of two
    groups renews its classifier only, so that some layers still train after the refinement)."""
    return max(1, min(depth, len(groups) - 1))


def scaled_epochs(value: int, setting: Setting, reference: int) -> HParam:
    """An epoch or pass count of the official ``reference``-epoch schedule (:func:`epoch_hparam`), ``paper`` on
    CIFAR-10/100 images and ``suite`` elsewhere (the CIFAR-10 value, scaled)."""
    source = "paper" if setting.images in PUBLISHED else "suite"
    hp = epoch_hparam(value, setting, source, reference)
    return hp if setting.images in PUBLISHED else HParam(hp.value, "suite")


#: Adam's rate of the refinement on the small datasets no paper ran (``suite``; see :func:`refinement_hparams`).
SMALL_DATA_PES_LR = 1e-3


def refinement_hparams(setting: Setting, values: dict[str, Any],
                       published: tuple[str, ...] = PUBLISHED) -> dict[str, HParam]:
    """The refinement's passes and Adam rate: the official values (``paper`` on the ``published`` families,
    ``paper-default`` on other benchmarks). The passes are the refinement's own, not epochs of the recipe's
    schedule, so they do not scale with the run's length.

    On the small built-in datasets (no family) the rate is :data:`SMALL_DATA_PES_LR` (``suite``): the official
    1e-4 refines with about 2,500 Adam steps on CIFAR (7 passes of 351 batches), while a pass over MNIST-1D or the
    8x8 digit images has 12-18 times fewer batches; at 1e-4 the renewed layers, frozen afterwards, stay near their
    initialisation (MNIST-1D, symmetric 50 %, seed 1: 27.4 % test accuracy against 63.7 % at 1e-3).
    """
    source = "paper" if setting.family in published else "paper-default"
    out = {key: HParam(value, source) for key, value in values.items()}
    if not setting.family and "pes_lr" in out:
        out["pes_lr"] = HParam(SMALL_DATA_PES_LR, "suite")
    return out


@register_method("pes")
class PES(Method):
    """Progressive early stopping: CE until T1, two refinement stages of re-initialised layers at T1 (then frozen),
    class-weighted CE on the confident samples afterwards."""

    display_name = "PES"
    relative_cost = 1.0  # FLOPs of a quick-grid run: 0.99x (MNIST-1D), 1.07x (8x8 digit images) CE
    hparams = {"T1": 25, "T2": 7, "T3": 5, "pes_lr": 1e-4}
    #: Layer groups renewed by each refinement stage, counted from the output (1: the classifier; 2: also the
    #: group before it, a ResNet's last stage), and the hyperparameter naming its passes.
    refine_stages: tuple[tuple[int, str], ...] = ((2, "T2"), (1, "T3"))
    paper_recipes = {
        CIFAR_10: recipe(ref=f"{PES_CS}:22-25,56-61,128-166", arch="resnet18", **_CIFAR_RECIPE),
        CIFAR_100: recipe(ref=f"{PES_CS}:22-25,56-61,142-166", arch="resnet34", **_CIFAR_RECIPE),
    }
    deviations = (
        "Validation split: the official PES_cs.py holds out 10 % of the training set uniformly at random and "
        "evaluates it with the training augmentation; the suite keeps its 10 % noisy split, stratified by the "
        "observed label and evaluated without augmentation, so that every method of a grid selects on the same "
        "samples (it decides model selection only; effect not measured).",
        "The official refinement starts with a confident-set prediction pass whose result it discards "
        "(PES_cs.py:109); the suite skips it (it changes no state, only random draws and compute).",
        "Sets smaller than one batch (tiny data only) train as one batch; the official drop_last loaders would "
        "yield no batch.",
    )

    reproduced = (
        "The renewed layers (the last stage and the classifier) are never trained again after epoch T1: the "
        "official renew_layers builds new modules that the main SGD, built once (PES_cs.py:165), does not hold; the "
        "suite re-initialises them in place and freezes them, also after a resume (their batch-norm statistics "
        "still move).",
        "Epoch T1 trains nothing but the refinement: T2 passes of Adam (pes_lr) on the re-initialised last stage and "
        "classifier, then T3 on a re-initialised classifier, plain unweighted CE on every sample "
        "(PES_cs.py:105-125,175-177); the recipe's schedule still counts the epoch.",
        "The confident split takes the mean softmax of two augmented views in eval mode (PES_cs.py:82-86); class "
        "weights are the mean non-zero class count over the count, empty classes 0 (PES_cs.py:91-97); every pass "
        "drops its last partial batch (drop_last loaders).",
    )

    @classmethod
    def default_hparams(cls, setting: Setting) -> dict[str, HParam]:
        t1 = T1_BY_FAMILY.get(setting.images, T1_BY_FAMILY[CIFAR_10])
        return {
            "T1": scaled_epochs(t1, setting, PAPER_EPOCHS),
            **refinement_hparams(setting, {"T2": 7, "T3": 5, "pes_lr": 1e-4}),
        }

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        for key in ("T1", *(name for _, name in cls.refine_stages)):
            value = values[key]
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ConfigError(f"[methods.{cls.name}] {key} must be an integer >= 0, got {value!r}")
        if not values["pes_lr"] > 0:
            raise ConfigError(f"[methods.{cls.name}] pes_lr must be > 0 (Adam's rate of the refinement), "
                              f"got {values['pes_lr']!r}")

    @classmethod
    def search_space(cls, setting: Setting, hparams: dict[str, Any] | None = None) -> SearchSpace:
        """What ``[tune]`` searches (ranges ``suite``: the paper studies T1 in a figure we have not checked).

        - ``T1``: an integer from 5 % to 50 % of the run's epochs, around the official 12.5 % (CIFAR-10) and 15 %
          (CIFAR-100), and further: the epoch at which the network is refined decides how much it has learnt and how
          much noise it has memorised, and on short runs of small data (MNIST-1D) a later T1 helps.
        - ``pes_lr``: log-uniform on [3e-5, 3e-3], from half a decade below the official Adam rate 1e-4 of the
          refinement passes to half a decade above the suite's 1e-3 for small data.
        """
        low = max(1, round(0.05 * setting.epochs))
        high = max(low + 1, round(0.5 * setting.epochs))
        return {"T1": IntUniform(low, high, "suite"), "pes_lr": LogUniform(3e-5, 3e-3, "suite")}

    # ---------------------------------------------------------------- training
    def setup(self, ctx: TrainContext) -> None:
        self._net = ctx.nets[0]
        self._everyone = ctx.epoch_indices
        self.refined = False
        self.selected: tuple[torch.Tensor, torch.Tensor] | None = None

    #: Whether the refinement epoch also trains on the confident samples (PES-semi) or does nothing else (PES).
    trains_at_refinement = False

    def train_epoch(self, ctx: TrainContext, epoch: int) -> dict[str, float]:
        self.selected, self.steps, self.mix_steps = None, 0, 0
        self.sums = torch.zeros(3, device=ctx.device)  # loss, and PES-semi's L_x and L_u: read once per epoch
        if epoch < self.hp["T1"]:
            self._cross_entropy(ctx)
        else:
            if epoch == self.hp["T1"] and not self.refined:
                self.refine(ctx)
            if epoch > self.hp["T1"] or self.trains_at_refinement:
                self.train_selected(ctx, epoch)
        values = self.sums.tolist()
        # an epoch without a step (no refinement pass, no confident pair of samples) has no loss to report
        stats = {"train_loss": values[0] / self.steps if self.steps else 0.0}
        if self.mix_steps:
            stats.update(loss_x=values[1] / self.mix_steps, loss_u=values[2] / self.mix_steps)
        return stats

    def note(self, loss: torch.Tensor) -> None:
        """Count a step and add its loss to the epoch's sum (on the device: no synchronisation)."""
        self.sums[0] += loss.detach()
        self.steps += 1

    def _cross_entropy(self, ctx: TrainContext, optimizers: Sequence[torch.optim.Optimizer] | None = None) -> None:
        """One pass of plain CE over the epoch's samples: the recipe's optimiser, or only ``optimizers``."""
        for batch in full_batches(ctx):
            loss = F.cross_entropy(ctx.nets[0](batch.x), batch.y)
            if optimizers is None:
                ctx.optimize(loss)
            else:
                ctx.optimize(loss, which=[], extra=optimizers)
            self.note(loss)

    def renewed_groups(self) -> list[nn.Module]:
        """The layer groups the refinement renews (frozen after it): those of its deepest stage that runs (a stage
        of 0 passes renews nothing, as the official ``noisy_refine`` returns at once)."""
        groups = self._net.layer_groups()
        depths = [_depth(depth, groups) for depth, passes in self.refine_stages if self.hp[passes] > 0]
        return list(groups[-max(depths):]) if depths else []

    def refine(self, ctx: TrainContext) -> None:
        """Epoch T1's refinement stages; afterwards the renewed layers stay frozen for the rest of the run."""
        net = ctx.nets[0]
        groups = net.layer_groups()
        for depth, passes in self.refine_stages:
            if self.hp[passes] <= 0:  # the official noisy_refine returns at once
                continue
            renewed = list(groups[-_depth(depth, groups):])
            reinitialise(renewed)
            params = parameters_of(renewed)
            train_only(net, params)
            adam = torch.optim.Adam(params, lr=self.hp["pes_lr"])
            for _ in range(self.hp[passes]):
                self._cross_entropy(ctx, [adam])
        self.refined = True
        self.freeze()

    def freeze(self) -> None:
        """Every parameter trainable except those of the renewed groups (the state after epoch T1)."""
        frozen = {id(p) for p in parameters_of(self.renewed_groups())}
        for param in self._net.parameters():
            param.requires_grad_(id(param) not in frozen)

    def split(self, ctx: TrainContext) -> tuple[torch.Tensor, torch.Tensor]:
        """The epoch's samples and their confident mask (two augmented views, eval mode)."""
        indices = ctx.epoch_indices
        mask = pes_confident_mask(two_view_probs(ctx, ctx.nets[0], indices), ctx.y_noisy[indices])
        self.selected = (indices, mask)
        return indices, mask

    def train_selected(self, ctx: TrainContext, epoch: int) -> None:
        """Class-weighted CE on the confident samples, with the recipe's optimiser."""
        indices, mask = self.split(ctx)
        _, weights = pes_class_weights(ctx.y_noisy[indices], mask, ctx.num_classes)
        for batch in full_batches(ctx, indices[mask]):
            loss = pes_weighted_ce(ctx.nets[0](batch.x), batch.y, weights)
            ctx.optimize(loss)
            self.note(loss)

    # ---------------------------------------------------------------- diagnostics and state
    def selection(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.selected is None:  # CE epochs and the refinement train on every sample
            return self._everyone, torch.ones(len(self._everyone), dtype=torch.bool, device=self._everyone.device)
        return self.selected

    def state_dict(self) -> dict[str, Any]:
        return {"refined": self.refined}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.refined = bool(state["refined"])
        if self.refined:  # requires_grad is not in a checkpoint: freeze the renewed layers again
            self.freeze()
