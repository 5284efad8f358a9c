"""JoCoR (Wei, Feng, Chen, An; CVPR 2020), as its official code trains it (hongxin001/JoCoR @ 86db359:
``main.py``, ``algorithm/jocor.py``, ``algorithm/loss.py``, ``model/cnn.py``, ``README.md``).

**Algorithm.** Two networks see the same batch. Per row a joint loss
l_i = (1 - lambda)(CE_1 + CE_2) + lambda (KL(p_2 || p_1) + KL(p_1 || p_2)), with gradient through both arguments of
each KL (:func:`jocor_loss`, :func:`jocor_kl`); the ``k = int((1 - R(T)) B)`` rows of smallest l_i are kept (one
selection for both networks) and their mean is minimised with **one** backward through both networks and one
Adam step over both. The suite steps each network's own Adam in the same call (``ctx.optimize(loss)``): Adam is
elementwise, so two Adams with the same settings equal one over both networks, bit for bit (tested). Net 1
predicts; net 2 is recorded every epoch as ``test_acc_net2`` (``predict_heads``).

**What the paper reports** is the mean of **both** networks' test accuracies over official epochs 190..199
(``main.py:193-198``): the suite's epochs 189..198, the last 10 of 199. The run's ``mean-last`` metric is net 1's
alone; :func:`two_network_mean_last` gives the paper's number from a run's history
(``noisybench.store.results.load_history(DIR)`` rows of one run, or ``result["history"]``).

**Paper recipe** (``protocol = "paper"``, CIFAR-10 and CIFAR-100; ``noisybench plan`` cites each value): JoCoR's
own 7-layer CNN ``jocor_cnn`` (``model/cnn.py``; its dropout rate is defined but never applied), not
Co-teaching's; one Adam lr 1e-3 over both networks (``algorithm/jocor.py:64-65``), batch 128 with ``drop_last``
(``main.py:53,141-145``), 199 trained epochs (``main.py:171``), lr tail and beta_1 0.1 from official epoch 80 /
100 (``main.py:85,109``, ``algorithm/jocor.py:30-38,157-160``), raw ``ToTensor()`` inputs (``main.py:92``), all
50,000 training images.

**Fidelity decisions** (each also in :attr:`JoCoR.deviations` where the suite departs):

1. *Epochs, plan index, keep count, beta_1 switch*: as Co-teaching's (``noisybench.methods.coteaching``, decisions
   1, 2, 4): 199 epochs reading plan entry ``epoch + 1``; ``int((1 - R) B)`` truncated; a keep count of 0 is refused
   before the first epoch (the official code trains on NaN); the official function returns its one loss twice.
2. *The KL in log space.* The official ``kl_loss_compute`` feeds ``softmax(target)`` to ``F.kl_div``, whose
   gradient with respect to the target is log(q) + 1 - log p: where a softmax entry underflows to exactly 0 (a logit
   gap beyond about 104 in float32, 745 in float64) the backward is 0 * -inf = NaN for that row, and one Adam step
   spreads it to every weight of both networks. The suite computes sum_c q_c (log q_c - log p_c) from
   ``log_softmax`` of both arguments: the same value, the same gradient wherever the official one is finite (equal
   to the float64 official gradient within 1e-10 and, in float32, within 1e-5), finite everywhere. Deviation; a
   test shows the official formula's NaN in float32.
3. *Oracle forget rate.* Under ``paper`` tau is the nominal noise rate, halved for the dataset's asymmetric noise
   (``algorithm/jocor.py:20-26``; ``paper-default``); under ``shared`` a fixed 0.2 (``suite``), as Co-teaching's.
4. *lambda* (``co_lambda``): the argparse default is 0.1 (``main.py:32``); the README's values are 0.9 for CIFAR-10
   with symmetric 20 / 50 % and asymmetric 40 % noise, 0.65 for symmetric 80 % (``paper``, on the official recipe
   for those settings), 0.85 for CIFAR-100 (``paper-default``: one value for the dataset). The README warns that
   lambda must be retuned with normalisation or a ResNet: on any other recipe or dataset the same table (0.9 where
   it says nothing) is tagged ``suite``.
5. *No augmentation, no normalisation, drop_last loaders, test-set scoring, noise realisation*: as Co-teaching's
   (the official test loader scores 9,984 of 10,000 images, the suite all; the official noise uses
   ``random_state=0`` for every seed, the suite's follows the seed).
6. The per-sample loss is not moved to the CPU to be sorted by numpy (``algorithm/loss.py:24-27``: a host-device
   synchronisation per step); ties keep the earlier row. ``noise_or_not`` is not ported: :meth:`selection` returns
   each batch's kept rows, scored by the trainer.

Hyperparameters: ``forget_rate``, ``num_gradual``, ``exponent`` as Co-teaching's; ``co_lambda`` (decision 4).
Unverified against the paper's tables: every value tagged ``paper-default``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from noisybench.errors import ConfigError
from noisybench.facts import CIFAR_10, CIFAR_100, Setting
from noisybench.method import Batch, HParam, TrainContext
from noisybench.methods._common import is_published_asym, is_symmetric, nearest_rate
from noisybench.methods._small_loss import (
    SmallLossMethod,
    check_common,
    check_keep,
    common_hparams,
    common_search_space,
    official_recipe,
    small_loss_rows,
    uses_paper_recipe,
)
from noisybench.registry import register_method
from noisybench.search_space import SearchSpace, Uniform


@dataclass(frozen=True)
class JoCoROutput:
    """What :func:`jocor_loss` returns: the loss to minimise, the kept rows (B,) bool, every row's joint loss
    ``per_sample`` (B,) with its graph, and k = ``num_remember``."""

    loss: torch.Tensor
    keep: torch.Tensor
    per_sample: torch.Tensor
    num_remember: int


def jocor_kl(pred_logits: torch.Tensor, target_logits: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """KL(q || p) = sum_c q_c (log q_c - log p_c) with p = softmax(pred), q = softmax(target), per row.

    The official ``kl_loss_compute(pred, soft_targets, reduce)`` computed in log space: both arguments are
    differentiable, and the gradient is finite where a softmax entry underflows (the official one is NaN there).

    Parameters
    ----------
    pred_logits, target_logits
        (B, C), any floating dtype (the result has it).
    reduce
        True: the mean over rows (a scalar); False: (B,).
    """
    log_p = F.log_softmax(pred_logits, dim=1)
    log_q = F.log_softmax(target_logits, dim=1)
    kl = (log_q.exp() * (log_q - log_p)).sum(dim=1)
    return kl.mean() if reduce else kl


def jocor_loss(logits1: torch.Tensor, logits2: torch.Tensor, labels: torch.Tensor, forget_rate: float,
               co_lambda: float) -> JoCoROutput:
    """The official ``loss_jocor`` (``algorithm/loss.py``), without its clean-label diagnostics.

    Per row (1 - co_lambda) CE_1 + (1 - co_lambda) CE_2 + co_lambda KL(p_2 || p_1) + co_lambda KL(p_1 || p_2)
    (:func:`jocor_kl`, summed in the official order); the mean over the k rows of smallest joint loss.

    Parameters
    ----------
    logits1, logits2
        The two networks' outputs (B, C) on the same batch.
    labels
        Observed labels (B,), int64.
    forget_rate
        The epoch's R(T).
    co_lambda
        lambda, the weight of the two KL terms.

    Returns
    -------
    JoCoROutput
        Replay: ``out.loss.backward()`` once; ``out.keep`` equals the official selection exactly.

    Raises
    ------
    ValueError
        When k is 0 (the official code would return NaN).
    """
    keep = check_keep(forget_rate, labels.shape[0])
    ce1 = F.cross_entropy(logits1, labels, reduction="none") * (1 - co_lambda)
    ce2 = F.cross_entropy(logits2, labels, reduction="none") * (1 - co_lambda)
    per_sample = (ce1 + ce2 + co_lambda * jocor_kl(logits1, logits2, reduce=False)
                  + co_lambda * jocor_kl(logits2, logits1, reduce=False))
    rows, kept = small_loss_rows(per_sample, keep)
    return JoCoROutput(per_sample[rows].mean(), kept, per_sample, keep)


#: The pure numerics the method calls, replayable against vectors recorded from the official code.
REFERENCE_FUNCTIONS = (jocor_loss, jocor_kl)


def two_network_mean_last(history: Sequence[dict[str, Any]], k: int = 10) -> float:
    """The number JoCoR's paper reports: the mean of ``test_acc`` (net 1) and ``test_acc_net2`` over the last ``k``
    epochs of a run's history (``main.py:193-198``: 2k numbers)."""
    rows = list(history)[-k:]
    values = [float(row[key]) for row in rows for key in ("test_acc", "test_acc_net2")]
    return sum(values) / len(values)


REPO = "hongxin001/JoCoR@86db359"
_REFS = {
    "arch": f"{REPO} model/cnn.py:11-52 (JoCoR's own CNN; its dropout rate is never applied)",
    "epochs": f"{REPO} main.py:171 (trains epochs 1..199 of a 200-entry plan: official epoch = suite epoch + 1)",
    "optimizer": f"{REPO} main.py:15; algorithm/jocor.py:64-65 (one Adam over both networks)",
    "batch_size": f"{REPO} main.py:53,141-145 (the loader drops the last partial batch; so does the suite's port)",
    "schedule": f"{REPO} main.py:85,109; algorithm/jocor.py:30-38,157-160 (lr tail and beta_1 0.1 from official "
                "epoch 80 / 100)",
    "inputs": f"{REPO} main.py:92 (transforms.ToTensor() only)",
    "val_fraction": f"{REPO} main.py:141-145 (trains on the whole training set)",
}
#: co_lambda of the official README for CIFAR-10 by symmetric-noise rate (asymmetric 40 %: 0.9); CIFAR-100: 0.85.
README_LAMBDA_C10_SYM = {0.2: 0.9, 0.5: 0.9, 0.8: 0.65}
README_LAMBDA_C10_ASYM = {0.4: 0.9}
README_LAMBDA_C100 = 0.85
#: lambda where the README says nothing (its most frequent best value).
DEFAULT_LAMBDA = 0.9


def co_lambda_hparam(setting: Setting) -> HParam:
    """lambda by the images' family and the noise (decision 4): ``paper`` / ``paper-default`` on the official recipe
    for the settings the README names, ``suite`` elsewhere."""
    source, exact = "suite", False
    value = DEFAULT_LAMBDA
    if setting.images == CIFAR_100:
        value, exact, source = README_LAMBDA_C100, True, "paper-default"
    elif setting.images == CIFAR_10 and is_symmetric(setting):
        value, exact = nearest_rate(setting.noise_rate, README_LAMBDA_C10_SYM)
        source = "paper"
    elif setting.images == CIFAR_10 and is_published_asym(setting):
        value, exact = nearest_rate(setting.noise_rate, README_LAMBDA_C10_ASYM)
        source = "paper"
    return HParam(float(value), source if exact and uses_paper_recipe(setting) else "suite")


@register_method("jocor")
class JoCoR(SmallLossMethod):
    """JoCoR: one small-loss selection on a joint CE + symmetric-KL loss, one backward through both networks."""

    display_name = "JoCoR"
    hparams = {"forget_rate": 0.2, "num_gradual": 10, "exponent": 1.0, "co_lambda": DEFAULT_LAMBDA}
    paper_recipes = {
        CIFAR_10: official_recipe("jocor_cnn", None, decay_start=80, refs=_REFS),
        CIFAR_100: official_recipe("jocor_cnn", None, decay_start=100, refs=_REFS),
    }
    deviations = (
        "KL: the official kl_loss_compute (algorithm/loss.py:8-15) back-propagates NaN through softmax(target) "
        "where an entry underflows to 0 (logit gaps beyond ~104 in float32); the suite computes the KL from "
        "log_softmax of both arguments: the same values, the official gradient wherever it is finite, finite "
        "everywhere",
        "evaluation: the official test loader drops its last partial batch (main.py:147-151: 9,984 of 10,000 CIFAR "
        "test images scored); the suite scores every test image (at most 0.16 points)",
        "noise: the official noisify draws with numpy RandomState(0) whatever the seed (data/cifar.py:51, "
        "data/utils.py), one realisation for every seed; the suite's noise follows the run's seed",
        "forget rate: the official code forgets the true noise rate, halved for its asymmetric noise "
        "(algorithm/jocor.py:20-26, an oracle); the suite does so under protocol paper only, and forgets a fixed 0.2 "
        "under shared (no method is told the noise rate) and for noise without a rate",
        "keep count: a forget rate with int((1 - R) * batch) = 0 trains on NaN losses in the official code; the suite "
        "refuses such a run before its first epoch",
    )

    @classmethod
    def default_hparams(cls, setting: Setting) -> dict[str, HParam]:
        """tau (halved for the dataset's asymmetric noise under ``paper``), T_k, c, lambda (decision 4)."""
        return {**common_hparams(setting, halve_for_dataset_asym=True), "co_lambda": co_lambda_hparam(setting)}

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        check_common(values, "jocor")
        lam = values["co_lambda"]
        if not (isinstance(lam, (int, float)) and not isinstance(lam, bool) and 0 <= lam <= 1):
            raise ConfigError(f"[methods.jocor] co_lambda must be in [0, 1], got {lam!r}")

    @classmethod
    def search_space(cls, setting: Setting, hparams: Mapping[str, Any] | None = None) -> SearchSpace:
        """Co-teaching's tau, T_k and c, and lambda in [0.5, 0.9] (``paper-default``: the official README's "the best
        lambda is between 0.5-0.9")."""
        return {**common_search_space(setting), "co_lambda": Uniform(0.5, 0.9, "paper-default")}

    def step(self, ctx: TrainContext, batch: Batch, forget_rate: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Both forwards, the joint loss, one backward and both networks' Adam steps."""
        net1, net2 = ctx.nets
        out = jocor_loss(net1(batch.x), net2(batch.x), batch.y, forget_rate, self.hp["co_lambda"])
        ctx.optimize(out.loss)
        return [(batch.index, out.keep)]
