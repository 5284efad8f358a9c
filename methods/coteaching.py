"""Co-teaching (Han, Yao, Yu, Niu, Xu, Hu, Tsang, Sugiyama; NeurIPS 2018), as its official code trains it
(bhanML/Co-teaching @ 7c7fbe2: ``main.py``, ``loss.py``, ``model.py``, ``data/utils.py``).

**Algorithm.** Two networks see the same batch. Each ranks the rows by its own per-sample cross-entropy and keeps
the ``k = int((1 - R(T)) B)`` smallest; each network then trains on the rows its **peer** kept. The forget rate
R(T) rises linearly from 0 to tau over T_k plan entries (``forget_rate_schedule``), then stays at tau. Net 1
predicts (the official headline); net 2 is recorded every epoch as ``test_acc_net2`` (``predict_heads``), as the
official log prints both.

**Paper recipe** (``protocol = "paper"``, CIFAR-10 and CIFAR-100; ``noisybench plan`` cites each value):
``coteaching_cnn`` (``model.py``), Adam lr 1e-3 without weight decay (``main.py:19,263,268``), batch 128 with
``drop_last`` (``main.py:42,247-251``), 199 trained epochs (``main.py:287``), lr constant until official epoch
80 (CIFAR-10, ``main.py:72``) / 100 (CIFAR-100, ``main.py:94``) then lr (200 - e) / (200 - s) with Adam's
beta_1 0.1 instead of 0.9 (``main.py:119-131``), inputs ``ToTensor()`` only: no augmentation, no normalisation
(``main.py:77,99``), all 50,000 training images (no validation split: report ``mean-last`` or ``last``).

**Fidelity decisions** (each also in :attr:`CoTeaching.deviations` where the suite departs, which
``noisybench plan`` prints):

1. *Epochs and the plan index.* The official plans have 200 entries and training reads entries 1..199 (entry 0
   only scores the untrained networks): the first trained epoch forgets R = tau/9 (T_k = 10), the lr never reaches
   0 (the last epoch trains at lr/120). The suite trains 199 epochs and reads entry ``epoch + 1`` at its 0-based
   epoch, under every protocol; schedule ``linear-tail`` with ``milestones = [79]`` (CIFAR-100: ``[99]``) and
   ``adam_beta1_tail = 0.1`` is the official lr and beta_1 plan read the same way. Reproduced.
2. *Truncating keep count* (``num_remember``): ``int((1 - R) B)`` in float64, so ``(1 - 0.8) * 10`` keeps 1, not 2.
   Reproduced. Where it is 0 the official code averages an empty selection and trains on NaN: the suite refuses
   such a run before its first epoch (``ConfigError`` naming ``forget_rate`` and ``batch_size``); batches are full
   (``drop_last``, as the official loader), so the check is exact.
3. *Double division* (``loss.py:26-29``): each returned loss is a mean over the kept rows, divided again by ``k``,
   so every kept sample's gradient carries 1/k^2. Under Adam the factor changes only how large eps is relative to
   the gradient (invisible in practice); under an SGD recipe it would shrink every step k-fold (k = 25..128). The
   hyperparameter ``double_division`` keeps it on the official Adam recipe (``paper-default``) and divides once
   elsewhere (``suite``: the ``shared`` recipes use SGD); ``coteaching_loss`` always returns the official values.
4. *Adam's beta_1 switch* with the lr tail: the recipe key ``adam_beta1_tail``; the trainer writes beta_1 into
   every optimiser at each epoch start, as ``adjust_learning_rate`` does. Reproduced.
5. *Oracle forget rate.* The official ``forget_rate`` is the true noise rate (``main.py:112-115``). Under
   ``paper`` the suite sets tau to the nominal noise rate (``paper-default``). Under ``shared``, the leaderboard
   protocol, no method is told the noise rate: tau is a fixed 0.2 (``suite``; the value the ReScience reproduction
   of the CIFAR-N benchmark, KlemenVovk/noisy-labels, uses on human noise), as for noise without a rate. Tune it with
   the search space or set ``[methods.coteaching] forget_rate``.
6. *Dropout at evaluation.* ``model.py:45,54`` call ``F.dropout2d`` without the training flag, so dropout stays
   on in ``eval()``: test predictions are random. Reproduced by ``coteaching_cnn``'s ``dropout_in_eval = true``
   (drawn from the run's seeded generator: runs stay reproducible and resumable).
7. *No augmentation, no normalisation*: ``augment = false``, ``normalize = false`` (raw [0, 1] pixels). Reproduced.
8. *drop_last loaders*: training batches are always full (also under ``shared``). The official test loader drops
   its last 16 images (9,984 of 10,000 scored); the suite scores all of them (deviation, at most 0.16 points).
9. *Noise realisation*: ``noisify`` draws with numpy ``RandomState(0)`` whatever the seed; the suite's
   ``sym-draw`` / ``pairflip-draw`` follow the run's seed (deviation: seeds also vary the noise).
10. *Initialisation*: under the official PyTorch 0.3.0 batch-norm scales start from U(0, 1); current PyTorch starts
    them at 1 (deviation, not reproduced, not measured).
11. ``noise_or_not`` (clean labels, the printed "pure ratio") is not ported: :meth:`selection` returns every
    row's judgement by both networks and the trainer scores it (``select_precision`` is the pure ratio).
12. One backward of ``loss1 + loss2`` replaces the official two (each loss reaches only its own network's
    parameters): the same weights bit for bit (tested), one autograd pass; ``train_loss`` is their sum.

Hyperparameters: ``forget_rate`` (tau; decision 5), ``num_gradual`` (T_k: 10 plan entries on the paper's
schedule, ``paper-default``: the argparse default; off it ``max(3, round(10 (E + 1) / 200))``, ``suite``, at
least one trained epoch forgetting less than tau), ``exponent`` (c = 1, ``paper-default``), ``double_division``
(decision 3). Unverified against the paper's tables: every value tagged ``paper-default`` above.

Published numbers: the official README's (``noisybench/reporting/published.csv``: ``sym-draw``,
``pairflip-draw``; the README does not say which epochs they summarise, so their metric is ``unspecified``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from noisybench.errors import ConfigError
from noisybench.facts import CIFAR_10, CIFAR_100, Setting
from noisybench.method import Batch, HParam, TrainContext
from noisybench.methods._small_loss import (
    SmallLossMethod,
    check_common,
    check_keep,
    common_hparams,
    common_search_space,
    forget_rate_schedule,
    num_remember,
    official_recipe,
    small_loss_rows,
    uses_paper_recipe,
)
from noisybench.registry import register_method
from noisybench.search_space import SearchSpace

__all__ = ["REFERENCE_FUNCTIONS", "CoTeaching", "CoteachingOutput", "coteaching_loss", "forget_rate_schedule",
           "num_remember"]

@dataclass(frozen=True)
class CoteachingOutput:
    """What :func:`coteaching_loss` returns.

    ``loss1`` trains net 1 on the rows net 2 kept (``keep2``), ``loss2`` net 2 on the rows net 1 kept
    (``keep1``); ``ce1``, ``ce2`` are the per-sample cross-entropies (B,) each network ranked by;
    ``num_remember`` is k, the rows each network keeps.
    """

    loss1: torch.Tensor
    loss2: torch.Tensor
    keep1: torch.Tensor
    keep2: torch.Tensor
    ce1: torch.Tensor
    ce2: torch.Tensor
    num_remember: int


def coteaching_loss(logits1: torch.Tensor, logits2: torch.Tensor, labels: torch.Tensor,
                    forget_rate: float) -> CoteachingOutput:
    """The official ``loss_coteaching`` (``loss.py``), without its clean-label diagnostics.

    Each network keeps the ``k = num_remember(forget_rate, B)`` rows of smallest cross-entropy
    (:func:`~noisybench.methods._small_loss.small_loss_rows`); each loss is the peer-selected rows' mean
    cross-entropy divided again by k (the official double division). Computed in the logits' dtype.

    Parameters
    ----------
    logits1, logits2
        The two networks' outputs (B, C) on the same batch.
    labels
        Observed labels (B,), int64.
    forget_rate
        The epoch's R(T).

    Returns
    -------
    CoteachingOutput
        Replay: ``(out.loss1 + out.loss2).backward()``; the masks equal the official selections exactly.

    Raises
    ------
    ValueError
        When k is 0 (the official code would return NaN).
    """
    keep = check_keep(forget_rate, labels.shape[0])
    ce1 = F.cross_entropy(logits1, labels, reduction="none")
    ce2 = F.cross_entropy(logits2, labels, reduction="none")
    rows1, keep1 = small_loss_rows(ce1, keep)
    rows2, keep2 = small_loss_rows(ce2, keep)
    loss1 = ce1[rows2].mean() / keep
    loss2 = ce2[rows1].mean() / keep
    return CoteachingOutput(loss1, loss2, keep1, keep2, ce1, ce2, keep)


REPO = "bhanML/Co-teaching@7c7fbe2"
_REFS = {
    "arch": f"{REPO} model.py (9-layer CNN; dropout2d stays on at evaluation, model.py:45,54)",
    "epochs": f"{REPO} main.py:287 (trains epochs 1..199 of a 200-entry plan: official epoch = suite epoch + 1)",
    "optimizer": f"{REPO} main.py:19,263,268",
    "batch_size": f"{REPO} main.py:42,247-251 (the loader drops the last partial batch; so does the suite's port)",
    "schedule": f"{REPO} main.py:72,94,119-131 (lr tail and Adam beta_1 0.1 from official epoch 80 / 100)",
    "inputs": f"{REPO} main.py:77,99 (transforms.ToTensor() only)",
    "val_fraction": f"{REPO} main.py:247-251 (trains on the whole training set)",
}
_NET = ("coteaching_cnn", {"dropout_in_eval": True})

DEVIATIONS = (
    "evaluation: the official test loader drops its last partial batch (main.py:253-257: 9,984 of 10,000 CIFAR "
    "test images scored); the suite scores every test image (at most 0.16 points)",
    "noise: the official noisify draws with numpy RandomState(0) whatever the seed (data/utils.py), one realisation "
    "for every seed; the suite's noise follows the run's seed (the same for every method)",
    "initialisation: under the official PyTorch 0.3.0 batch-norm scales start from U(0, 1), under current PyTorch "
    "at 1; not reproduced, not measured",
    "forget rate: the official code forgets the true noise rate (main.py:112-115, an oracle); the suite does so under "
    "protocol paper only, and forgets a fixed 0.2 under shared (no method is told the noise rate) and for noise "
    "without a rate",
    "keep count: a forget rate with int((1 - R) * batch) = 0 trains on NaN losses in the official code; the suite "
    "refuses such a run before its first epoch",
)
SINGLE_DIVISION = (
    "loss scale: the official loss divides each kept-row mean again by the keep count k (loss.py:26-29), a factor "
    "1/k that Adam almost cancels (only eps sees it) and an SGD recipe would not (k-fold smaller steps); this run "
    "divides once (double_division = false, the suite's value off the official Adam recipe)"
)

#: The pure numerics the method calls, replayable against vectors recorded from the official code.
REFERENCE_FUNCTIONS = (coteaching_loss, num_remember, forget_rate_schedule)


@register_method("coteaching")
class CoTeaching(SmallLossMethod):
    """Co-teaching: two networks, each trained on the small-loss rows its peer keeps; net 1 predicts."""

    display_name = "Co-teaching"
    hparams = {"forget_rate": 0.2, "num_gradual": 10, "exponent": 1.0, "double_division": False}
    paper_recipes = {
        CIFAR_10: official_recipe(*_NET, decay_start=80, refs=_REFS),
        CIFAR_100: official_recipe(*_NET, decay_start=100, refs=_REFS),
    }
    deviations = (*DEVIATIONS, SINGLE_DIVISION)

    @classmethod
    def default_hparams(cls, setting: Setting) -> dict[str, HParam]:
        """tau, T_k, c (decision 5, the ramp); the double division on the official Adam recipe only (decision 3)."""
        official = uses_paper_recipe(setting)
        return {**common_hparams(setting),
                "double_division": HParam(official, "paper-default" if official else "suite")}

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        check_common(values, "coteaching")
        if not isinstance(values["double_division"], bool):
            raise ConfigError(f"[methods.coteaching] double_division must be true or false, "
                              f"got {values['double_division']!r}")

    @classmethod
    def search_space(cls, setting: Setting, hparams: Mapping[str, Any] | None = None) -> SearchSpace:
        """tau in [0.05, 0.8] (``suite``), T_k in {5, 10, 15} and c in {0.5, 1, 2} (the official argparse help,
        T_k scaled with the run off the paper's schedule). No sensitivity study of the paper was transcribed."""
        return common_search_space(setting)

    @classmethod
    def deviations_for(cls, hparams: dict[str, Any]) -> tuple[str, ...]:
        """The fixed deviations, and the single division where ``double_division`` is false."""
        return DEVIATIONS if hparams.get("double_division", True) else cls.deviations

    def step(self, ctx: TrainContext, batch: Batch, forget_rate: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Both forwards, then one backward of ``loss1 + loss2`` and each network's own optimiser step.

        ``loss1`` depends on net 1's parameters only and ``loss2`` on net 2's (the selections carry no gradient), so
        the one backward gives each network exactly the gradient of its own loss, bit for bit the official
        ``loss_1.backward(); optimizer1.step(); loss_2.backward(); optimizer2.step()`` (tested), in one autograd
        pass. The epoch's ``train_loss`` is the mean of ``loss1 + loss2``.
        """
        net1, net2 = ctx.nets
        out = coteaching_loss(net1(batch.x), net2(batch.x), batch.y, forget_rate)
        loss = out.loss1 + out.loss2
        ctx.optimize(loss if self.hp["double_division"] else loss * out.num_remember)
        return [(batch.index, out.keep1), (batch.index, out.keep2)]
