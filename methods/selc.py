"""SELC: self-ensemble label correction (Yangdi Lu, Wenbo He; "SELC: Self-Ensemble Label Correction Improves
Learning with Noisy Labels", IJCAI 2022), as the official code MacLLL/SELC @ 69bcf1e trains it.

One network and a soft label per training sample, T (N x C), **one-hot at the observed labels** at the start
(``SELCLoss.__init__``, ``class-conditional_noise/train_cifar_with_SELC.py:46-47``). Epochs e < ``es``: plain
cross-entropy on the observed labels. From epoch ``es`` on, every iteration, for the batch rows I (``:58-63``):

* t_i <- alpha t_i + (1 - alpha) sg(p_i) (:func:`selc_update_targets`), p = softmax of the train-mode forward on
  the augmented view, before the loss; no clamp, no renormalisation;
* L = mean_i -sum_c t_ic log p_ic with the updated rows (:func:`selc_loss`).

The suite counts epochs from 0: the official CIFAR, CLOTHING_1M and WEB_VISION scripts count from 1 and train CE
while ``epoch <= es``, so their ``es`` is the suite's first SELC epoch unchanged. The ANIMAL-10N script (in
``real-world_noise/``, like the other real-world scripts) counts from 0 (line 128) with the same test, so its
``--es 40`` trains CE for 41 epochs: the suite's ``es`` there is 41 (reproduced, see :attr:`SELC.reproduced`). The
corrected labels are the diagnostic (``refined_targets``): the trainer scores argmax T against the clean labels
(``refined_acc``), as the official CIFAR script does once after training (``:225-228``); the method never sees
clean labels.

ALR (:mod:`noisybench.methods.alr`) builds on SELC and calls the same target update and the same soft-label
cross-entropy (:func:`soft_label_nll`); ALR with lambda_H = 0 is SELC.

Decisions (also in :attr:`SELC.deviations`, which ``noisybench plan`` prints):

1. **The loss is computed from the log-softmax.** The official loss takes the logarithm of the softmax
   (``torch.log(pred)``, ``train_cifar_with_SELC.py:62``): where a probability underflows to 0 (float32: a logit
   gap above about 104) its log is -inf, and -inf * t = NaN when t = 0 there (a class never predicted and never
   labelled), which turns the whole loss and every gradient NaN. The log-softmax gives the finite limit and equals
   the official value elsewhere (float64 relative differences below 1e-10 in the tests, at logit scales 3 and 100).
2. ANIMAL-10N: the official loader drops the last partial batch (``drop_last=True``, line 87 of its script); the
   suite keeps it (390 full batches of 128 and one of 80 per epoch instead of 390).
3. CLOTHING_1M: the official run trains on one class-balanced subset of 2,000 x 64 = 128,000 images drawn once
   (its data loader in ``real-world_noise/``, lines 43-52); that is the dataset's ``subset = 128000`` option, which
   the paper recipe cannot set. WEB_VISION: the official crop is 227 (its data loader, lines 104-114; the dataset's
   ``crop = 227`` option), and the network is timm's Inception-ResNet-v2 where the official code ships its own
   port (``models/InceptionResNetV2.py``).
4. The official CIFAR script writes its noisy labels to a file on the first run and reads them back in every later
   run (``dataloader_cifar.py:64-89``): one noise realisation for all seeds. The suite draws the noise from the
   run's seed.

Hyperparameters and their sources:

* ``es``: the ``estimated_es`` table (``train_cifar_with_SELC.py:66-69``, ``paper``) for the CIFAR-10 and CIFAR-100
  families under symmetric noise at 20/40/60/80 % (CIFAR-10 40/30/30/40, CIFAR-100 30/20/30/40) and the dataset's
  asymmetric noise at 40 % (CIFAR-10 40, CIFAR-100 20); other rates take the nearest row and other class-conditional
  noise the asymmetric row (``suite``). ANIMAL-10N 41 (``--es 40``, line 206 of its script, in its 0-based
  loop), CLOTHING_1M 5 (line 20 of its script), WEB_VISION 40 (line 15 of its script): ``paper``. Off the
  paper schedule (another protocol, or epochs overridden) every table value is scaled to the run's length
  (``suite``). Every other dataset: 20 % of the run's epochs (``suite``; the table's values are 10-20 % of 200
  epochs, before the first learning-rate drop).
* ``alpha``: 0.9 on CIFAR, ANIMAL-10N and WEB_VISION, 0.8 on CLOTHING_1M: the official scripts' defaults
  (``train_cifar_with_SELC.py:19``; line 213 of the ANIMAL-10N script, 16 of the WEB_VISION one, 21 of the
  CLOTHING_1M one), one value for every setting (``paper-default``); 0.9 elsewhere (``suite``).

Paper recipes (``protocol = "paper"``), all on the whole training set (``val_fraction = 0``: the official scripts
hold nothing out; the noisy-validation metric is then empty and reports use the last epoch, as the paper does):

* CIFAR-10 / CIFAR-100: ResNet-34 (the suite's ``resnet34``; the official one has an extra unused linear head),
  200 epochs, SGD lr 0.02, momentum 0.9, wd 1e-3, x0.1 at 40 and 80, batch 128, crop + flip
  (``train_cifar_with_SELC.py:14-22,80-87``; ``dataloader_cifar.py:124-145``). The paper reports the last epoch
  (``:188``). Noise: floor(rN) samples relabelled uniformly over all classes (the suite's ``sym-dividemix``), or
  mapped (CIFAR-10 pairs, CIFAR-100 next class in blocks of 5: ``asym-dividemix``) (``dataloader_cifar.py:66-87``).
* ANIMAL-10N: VGG-19-BN from scratch, 100 epochs, SGD lr 0.1 **without momentum**, wd 1e-3, x0.2 at 50 and 75,
  batch 128, horizontal flip only (its script, lines 61-119 and 206-213).
* CLOTHING_1M: ImageNet-pretrained ResNet-50, 40 epochs, SGD lr 0.01, momentum 0.9, wd 1e-3, x0.1 at 10 and 20,
  batch 64 (its script, lines 16-31 and 189-203).
* WEB_VISION (first 50 classes): Inception-ResNet-v2 from scratch, 100 epochs, SGD lr 0.01, momentum 0.9,
  wd 5e-4, x0.1 at 40 and 80, batch 32 (its script, lines 13-21 and 198-202).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from noisybench.errors import ConfigError
from noisybench.facts import ANIMAL_10N, CIFAR_10, CIFAR_100, CLOTHING_1M, WEB_VISION, Setting
from noisybench.method import Batch, HParam, Method, TrainContext, epoch_hparam, recipe
from noisybench.methods._common import (
    PerSampleTargets,
    is_class_conditional,
    is_published_asym,
    is_symmetric,
    nearest_rate,
)
from noisybench.registry import register_method
from noisybench.search_space import IntUniform, SearchSpace, Uniform

#: The official repository and commit every value below comes from.
REPO = "MacLLL/SELC@69bcf1e"
CIFAR_SCRIPT = f"{REPO} class-conditional_noise/train_cifar_with_SELC.py"
#: The real-world scripts, one per dataset family, in the official ``real-world_noise/`` folder.
ANIMAL_SCRIPT = f"{REPO} real-world_noise/ (the ANIMAL-10N training script)"
CLOTHING_SCRIPT = f"{REPO} real-world_noise/ (the CLOTHING_1M training script)"
WEB_SCRIPT = f"{REPO} real-world_noise/ (the WEB_VISION training script)"
#: Length of the official CIFAR schedule, to which the ``es`` table belongs.
SELC_EPOCHS = 200
#: The official ``estimated_es`` (``train_cifar_with_SELC.py:66-69``): family -> class-conditional? -> rate -> es.
SELC_ES = {
    CIFAR_10: {False: {0.2: 40, 0.4: 30, 0.6: 30, 0.8: 40}, True: {0.4: 40}},
    CIFAR_100: {False: {0.2: 30, 0.4: 20, 0.6: 30, 0.8: 40}, True: {0.4: 20}},
}
#: Real-world families: (es in the suite's 0-based counting, alpha, epochs of the official run, citation).
REAL_WORLD = {
    ANIMAL_10N: (41, 0.9, 100, f"{ANIMAL_SCRIPT} lines 128, 206, 213 (0-based loop, epoch <= 40)"),
    CLOTHING_1M: (5, 0.8, 40, f"{CLOTHING_SCRIPT} lines 20-21"),
    WEB_VISION: (40, 0.9, 100, f"{WEB_SCRIPT} lines 15-16"),
}
#: ``es`` as a share of the run's epochs on datasets SELC never ran.
ES_FRACTION = 0.2


def selc_update_targets(targets: torch.Tensor, probs: torch.Tensor, momentum: float) -> torch.Tensor:
    """SELC's EMA step t <- m t + (1 - m) sg(p) (no clamp, no renormalisation; ``SELCLoss.forward``).

    Parameters
    ----------
    targets
        Current soft labels of the batch rows (B, C).
    probs
        Softmax outputs of the batch (B, C); detached here.
    momentum
        EMA momentum m (SELC's alpha); m = 1 keeps the targets.

    Returns
    -------
    torch.Tensor
        The new soft labels (B, C), in the dtype of ``probs``.
    """
    return torch.lerp(probs.detach(), targets, momentum)


def soft_label_nll(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean_i -<t_i, log p_i>: the cross-entropy of soft labels, the targets treated as constants.

    Parameters
    ----------
    log_probs
        Log-probabilities (B, C), with their graph.
    targets
        Soft labels (B, C); detached here.

    Returns
    -------
    torch.Tensor
        The scalar loss.
    """
    return -torch.linalg.vecdot(targets.detach(), log_probs).mean()


def selc_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """SELC's loss after ``es``: mean_i -sum_c t_ic log p_ic, from the log-softmax (``SELCLoss.forward``, which
    takes ``torch.log(softmax)``: equal, except that it is NaN where a probability underflows).

    Parameters
    ----------
    logits
        Network outputs (B, C), float32 or float64; computed in their dtype.
    targets
        The batch rows' soft labels **after** this iteration's update (B, C), treated as constants.

    Returns
    -------
    torch.Tensor
        The scalar loss.
    """
    return soft_label_nll(F.log_softmax(logits, dim=1), targets)


#: The pure numerics the method calls, replayable against vectors recorded from the official code.
REFERENCE_FUNCTIONS = (selc_loss, selc_update_targets)

_NO_VAL = {"val_fraction": 0.0}
CIFAR_RECIPE = recipe(
    ref=f"{CIFAR_SCRIPT}:14-22,80-87; class-conditional_noise/dataloader_cifar.py:124-145", arch="resnet34",
    epochs=SELC_EPOCHS, optimizer="sgd", lr=0.02, momentum=0.9, nesterov=False, weight_decay=1e-3, schedule="step",
    milestones=[40, 80], gamma=0.1, batch_size=128, augment=True, **_NO_VAL)
ANIMAL_RECIPE = recipe(
    ref=f"{ANIMAL_SCRIPT} lines 61-119, 206-212", arch="vgg19_bn", epochs=100, optimizer="sgd",
    lr=0.1, momentum=0.0, nesterov=False, weight_decay=1e-3, schedule="step", milestones=[50, 75], gamma=0.2,
    batch_size=128, augment=True, **_NO_VAL)
CLOTHING_RECIPE = recipe(
    ref=f"{CLOTHING_SCRIPT} lines 16-31, 189-203", arch="resnet50", epochs=40, optimizer="sgd",
    lr=0.01, momentum=0.9, nesterov=False, weight_decay=1e-3, schedule="step", milestones=[10, 20], gamma=0.1,
    batch_size=64, augment=True, **_NO_VAL)
WEB_RECIPE = recipe(
    ref=f"{WEB_SCRIPT} lines 13-21, 198-202", arch="inception_resnet_v2", epochs=100,
    optimizer="sgd", lr=0.01, momentum=0.9, nesterov=False, weight_decay=5e-4, schedule="step", milestones=[40, 80],
    gamma=0.1, batch_size=32, augment=True, **_NO_VAL)


def es_hparam(setting: Setting) -> HParam:
    """``es`` for ``setting`` (see the module docstring): the official value on the paper schedule, scaled to the
    run elsewhere, 20 % of the run on datasets SELC never ran."""
    if setting.family in SELC_ES:
        value, exact = nearest_rate(setting.noise_rate, SELC_ES[setting.family][is_class_conditional(setting)])
        published = exact and (is_symmetric(setting) or is_published_asym(setting))
        hp = epoch_hparam(int(value), setting, "paper" if published else "suite", SELC_EPOCHS)
        return HParam(hp.value, hp.source, f"{CIFAR_SCRIPT}:66-69" if hp.source == "paper" else "")
    if setting.family in REAL_WORLD:
        value, _, epochs, ref = REAL_WORLD[setting.family]
        hp = epoch_hparam(value, setting, "paper", epochs)
        return HParam(hp.value, hp.source, ref if hp.source == "paper" else "")
    return HParam(max(1, int(round(ES_FRACTION * setting.epochs))), "suite")


@register_method("selc")
class SELC(PerSampleTargets, Method):
    """Self-ensemble label correction: CE until ``es``, then CE against EMA soft labels updated every iteration."""

    display_name = "SELC"
    relative_cost = 1.0
    hparams = {"es": 40, "alpha": 0.9}
    paper_recipes = {CIFAR_10: CIFAR_RECIPE, CIFAR_100: CIFAR_RECIPE, ANIMAL_10N: ANIMAL_RECIPE,
                     CLOTHING_1M: CLOTHING_RECIPE, WEB_VISION: WEB_RECIPE}
    deviations = (
        f"the loss is computed from the log-softmax; the official one takes log(softmax) ({CIFAR_SCRIPT}:62), which "
        "is -inf where a probability underflows (float32: a logit gap above about 104) and turns the loss and every "
        "gradient NaN where that class's soft label is 0. Equal elsewhere (float64 relative differences < 1e-10)",
        "ANIMAL-10N: the official loader drops the last partial batch (line 87 of its script); the suite keeps it "
        "(391 steps per epoch instead of 390)",
        "CLOTHING_1M: the official run trains on one class-balanced 128,000-image subset drawn once (its data "
        "loader, lines 43-52); set the dataset option subset = 128000 (the recipe cannot set it). WEB_VISION: "
        "official crop 227 (dataset option crop = 227) and its own Inception-ResNet-v2 port; the suite uses timm's",
        "the official CIFAR script reuses one saved noise file for every run (dataloader_cifar.py:64-89); the suite "
        "draws the noise from the run's seed",
    )
    reproduced = (
        f"soft labels start one-hot at the observed labels and move every iteration from the train-mode forward of "
        f"the augmented view, before the loss, with no clamp or renormalisation ({CIFAR_SCRIPT}:46-47,58-60)",
        "ANIMAL-10N counts epochs from 0 with the same `epoch <= es` test (line 128 of its script, SELCLoss.forward): "
        "--es 40 trains CE for 41 epochs, so the suite's es there is 41",
    )

    @classmethod
    def default_hparams(cls, setting: Setting) -> dict[str, HParam]:
        """``es`` from the official table or script per family and noise; ``alpha`` the scripts' default (see the
        module docstring)."""
        if setting.family in REAL_WORLD:
            alpha = HParam(REAL_WORLD[setting.family][1], "paper-default", REAL_WORLD[setting.family][3])
        elif setting.family in SELC_ES:
            alpha = HParam(0.9, "paper-default", f"{CIFAR_SCRIPT}:19")
        else:
            alpha = HParam(0.9, "suite")
        return {"es": es_hparam(setting), "alpha": alpha}

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        es, alpha = values["es"], values["alpha"]
        if isinstance(es, bool) or not isinstance(es, int) or es < 0:
            raise ConfigError(f"[methods.selc] es must be an integer >= 0 (the first epoch of label correction, "
                              f"counted from 0), got {es!r}")
        if isinstance(alpha, bool) or not 0 <= alpha <= 1:
            raise ConfigError(f"[methods.selc] alpha must be in [0, 1] (the EMA momentum), got {alpha!r}")

    @classmethod
    def search_space(cls, setting: Setting, hparams: Mapping[str, Any] | None = None) -> SearchSpace:
        """What ``[tune]`` searches, both ``suite`` (the paper's sensitivity study is not transcribed here).

        - ``es``: integers from 10 % to 40 % of the run's epochs (at least 1 and 2). The official table is 20 to 40
          of 200 epochs (10-20 %), CLOTHING_1M 5 of 40, ANIMAL-10N 41 of 100; the range also tries later starts.
        - ``alpha``: uniform on [0.7, 0.99]; the official scripts use 0.9, and 0.8 on CLOTHING_1M.
        """
        low = max(1, int(round(0.1 * setting.epochs)))
        high = max(low + 1, int(round(0.4 * setting.epochs)))
        return {"es": IntUniform(low, high, "suite"), "alpha": Uniform(0.7, 0.99, "suite")}

    def setup(self, ctx: TrainContext) -> None:
        self.targets = F.one_hot(ctx.y_noisy, ctx.num_classes).float()

    def training_step(self, ctx: TrainContext, batch: Batch, epoch: int) -> torch.Tensor:
        logits = ctx.nets[0](batch.x)
        if epoch < self.hp["es"]:
            return F.cross_entropy(logits, batch.y)
        targets = selc_update_targets(self.targets[batch.index], F.softmax(logits, dim=1), self.hp["alpha"])
        self.targets[batch.index] = targets
        return selc_loss(logits, targets)
