"""What Co-teaching and JoCoR share: the truncating keep count, the forget-rate plan, small-loss selections,
their common hyperparameters, the official Adam recipe and the two-network epoch.

Both official repositories (bhanML/Co-teaching @ 7c7fbe2, hongxin001/JoCoR @ 86db359) build a plan of
``n_epoch = 200`` entries and train the entries 1..199 (entry 0 only scores the untrained networks). The
suite trains 199 epochs and reads entry ``epoch + 1`` of the same plan at its 0-based epoch ``epoch``,
under every protocol: the official epoch is the suite's epoch + 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from noisybench.errors import ConfigError
from noisybench.facts import PAPER, NoiseKind, Setting
from noisybench.method import Batch, HParam, Method, TrainContext, recipe
from noisybench.methods._common import is_published_asym
from noisybench.search_space import Choice, SearchSpace, Uniform

#: Length of the official plans (``--n_epoch``); training reads entries 1..199 of them.
PLAN_ENTRIES = 200
#: T_k, the ramp length of the forget rate in plan entries (``--num_gradual``; the argparse help: 5, 10 or 15).
NUM_GRADUAL = 10
#: Fixed forget rate of every run whose noise rate the method must not be told (``shared``) or that has none.
FIXED_FORGET_RATE = 0.2
#: Least T_k off the paper's schedule, so that at least one trained epoch forgets less than the full rate.
MIN_SUITE_NUM_GRADUAL = 3


def num_remember(forget_rate: float, batch_size: int) -> int:
    """How many samples of a batch a network keeps: ``int((1 - forget_rate) * batch_size)``, truncated as the
    official code does (in float64: ``(1 - 0.8) * 10`` is 1.999..., so 1 sample is kept).

    Parameters
    ----------
    forget_rate
        The epoch's forget rate R(T), in [0, 1].
    batch_size
        Rows of the batch.

    Returns
    -------
    int
        The keep count; 0 where the official code would go on with NaN losses (the callers refuse it).
    """
    return int((1.0 - float(forget_rate)) * int(batch_size))


def forget_rate_schedule(n_epoch: int, forget_rate: float, num_gradual: int, exponent: float) -> np.ndarray:
    """The official forget-rate plan R(T), indexed by the **official** epoch (the suite's epoch + 1).

    ``n_epoch`` entries equal to ``forget_rate``, the first ``num_gradual`` replaced by
    ``linspace(0, forget_rate ** exponent, num_gradual)``; in float64.

    Parameters
    ----------
    n_epoch
        Entries of the plan (200 in the official code, which trains the entries 1..199).
    forget_rate
        tau, the rate reached after the ramp.
    num_gradual
        T_k, entries of the ramp (0: no ramp); at most ``n_epoch``.
    exponent
        c: the ramp ends at ``forget_rate ** exponent`` (then jumps to ``forget_rate`` when c != 1, as in the code).

    Returns
    -------
    numpy.ndarray
        (n_epoch,) float64.
    """
    if not 0 <= num_gradual <= n_epoch:
        raise ValueError(f"num_gradual ({num_gradual}) must be between 0 and n_epoch ({n_epoch})")
    schedule = np.full(int(n_epoch), float(forget_rate), dtype=np.float64)
    schedule[: int(num_gradual)] = np.linspace(0.0, float(forget_rate) ** float(exponent), int(num_gradual))
    return schedule


def small_loss_rows(losses: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``keep`` rows of smallest loss: their indices (smallest first) and a boolean mask over the rows.

    Ties keep the earlier row (a stable sort; the official ``np.argsort`` uses an unstable quicksort, so its
    order among exactly equal losses is unspecified). NaN losses sort last. No host synchronisation.
    """
    rows = torch.argsort(losses.detach(), stable=True)[:keep]
    mask = torch.zeros(losses.shape[0], dtype=torch.bool, device=losses.device)
    mask[rows] = True
    return rows, mask


def check_keep(forget_rate: float, batch_size: int) -> int:
    """The keep count of ``forget_rate`` for a batch of ``batch_size``; ValueError when it is 0 (the official code
    would average an empty selection and train on NaN)."""
    keep = num_remember(forget_rate, batch_size)
    if keep < 1:
        raise ValueError(f"forget rate {forget_rate:g} keeps int((1 - {forget_rate:g}) * {batch_size}) = 0 samples "
                         f"of a batch of {batch_size}; the loss of an empty selection is NaN")
    return keep


# ---------------------------------------------------------------------- hyperparameters
def uses_paper_recipe(setting: Setting) -> bool:
    """True when the run follows the method's own published recipe (``paper`` protocol on a family it ran)."""
    return setting.protocol == PAPER and setting.paper_epochs is not None


def forget_rate_hparam(setting: Setting, halve_for_dataset_asym: bool = False) -> HParam:
    """tau: the nominal noise rate under ``paper`` (the official rule, an oracle: ``main.py`` uses ``--noise_rate``
    unless ``--forget_rate`` is given; JoCoR halves it for its "asymmetric" noise; 0 for clean labels), else a fixed
    0.2 (``suite``: under ``shared`` no method is told the noise rate, and human labels have no nominal rate)."""
    rate = 0.0 if setting.noise_kind is NoiseKind.NONE else setting.noise_rate
    if setting.protocol != PAPER or rate is None:
        return HParam(FIXED_FORGET_RATE, "suite")
    if halve_for_dataset_asym and is_published_asym(setting):
        rate = rate / 2
    return HParam(float(rate), "paper-default")


def num_gradual_hparam(setting: Setting) -> HParam:
    """T_k: 10 plan entries on the paper's schedule; otherwise scaled to the run's plan of E + 1 entries,
    ``max(3, round(10 (E + 1) / 200))`` (``suite``)."""
    if setting.paper_schedule:
        return HParam(NUM_GRADUAL, "paper-default")
    return HParam(suite_num_gradual(NUM_GRADUAL, setting.epochs), "suite")


def suite_num_gradual(value: int, epochs: int) -> int:
    """A ramp of ``value`` entries of the 200-entry plan, scaled to a run of ``epochs`` epochs (at least 3)."""
    return max(MIN_SUITE_NUM_GRADUAL, int(round(value * (epochs + 1) / PLAN_ENTRIES)))


def common_hparams(setting: Setting, halve_for_dataset_asym: bool = False) -> dict[str, HParam]:
    """forget_rate, num_gradual and exponent for ``setting``."""
    return {"forget_rate": forget_rate_hparam(setting, halve_for_dataset_asym),
            "num_gradual": num_gradual_hparam(setting), "exponent": HParam(1.0, "paper-default")}


def check_common(values: dict[str, Any], name: str) -> None:
    """Refuse a forget rate outside [0, 1), a negative or non-integer T_k, an exponent <= 0."""
    rate, ramp, exponent = values["forget_rate"], values["num_gradual"], values["exponent"]
    if not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 <= rate < 1):
        raise ConfigError(f"[methods.{name}] forget_rate must be in [0, 1), got {rate!r}")
    if isinstance(ramp, bool) or not isinstance(ramp, int) or ramp < 0:
        raise ConfigError(f"[methods.{name}] num_gradual must be an integer >= 0 (plan entries), got {ramp!r}")
    if not (isinstance(exponent, (int, float)) and not isinstance(exponent, bool) and math.isfinite(exponent)
            and exponent > 0):
        raise ConfigError(f"[methods.{name}] exponent must be a finite number > 0, got {exponent!r}")


def common_search_space(setting: Setting) -> SearchSpace:
    """forget_rate in [0.05, 0.8] (``suite``: the quick board's noise reaches 0.8); T_k in {5, 10, 15} and c in
    {0.5, 1, 2} (``paper-default``: the values the official argparse help names), T_k scaled off the paper's
    schedule."""
    ramps = (5, NUM_GRADUAL, 15)
    if not setting.paper_schedule:
        ramps = tuple(dict.fromkeys(suite_num_gradual(r, setting.epochs) for r in ramps))
    return {"forget_rate": Uniform(0.05, 0.8, "suite"), "num_gradual": Choice(ramps, "paper-default"),
            "exponent": Choice((0.5, 1.0, 2.0), "paper-default")}


def official_recipe(arch: str, arch_kwargs: dict[str, Any] | None, decay_start: int,
                    refs: dict[str, str]) -> dict[str, HParam]:
    """The two repositories' shared CIFAR recipe with each value's citation: Adam 1e-3 without weight decay, batch
    128, 199 trained epochs, the lr tail and beta_1 switch from official epoch ``decay_start`` (the suite's
    ``decay_start - 1``), raw [0, 1] pixels without augmentation, the whole training set."""
    net = {"arch": arch, **({"arch_kwargs": arch_kwargs} if arch_kwargs is not None else {})}
    return {
        **recipe(ref=refs["arch"], **net),
        **recipe(ref=refs["epochs"], epochs=PLAN_ENTRIES - 1),
        **recipe(ref=refs["optimizer"], optimizer="adam", lr=1e-3, weight_decay=0.0),
        **recipe(ref=refs["batch_size"], batch_size=128),
        **recipe(ref=refs["schedule"], schedule="linear-tail", milestones=[decay_start - 1], adam_beta1_tail=0.1),
        **recipe(ref=refs["inputs"], augment=False, normalize=False),
        **recipe(ref=refs["val_fraction"], val_fraction=0.0),
    }


# ---------------------------------------------------------------------- the two-network epoch
class SmallLossMethod(Method):
    """Two networks trained on small-loss selections of ``drop_last`` batches, with the forget-rate plan read at
    official epoch = epoch + 1; net 1 predicts, net 2 is recorded as ``test_acc_net2``.

    Subclasses implement :meth:`step` (one batch: losses, optimiser steps, the selections made).
    """

    num_networks = 2
    relative_cost = 2.0

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        self._judged: list[torch.Tensor] = []
        self._kept: list[torch.Tensor] = []

    def setup(self, ctx: TrainContext) -> None:
        """Build the plan (at least E + 1 entries; a longer ramp is cut at the run's end) and refuse a forget rate
        that would keep no sample of a batch."""
        hp = self.hp
        entries = max(ctx.epochs + 1, int(hp["num_gradual"]))
        self.schedule = forget_rate_schedule(entries, hp["forget_rate"], hp["num_gradual"], hp["exponent"])
        highest = float(self.schedule[1 : ctx.epochs + 1].max())
        try:
            check_keep(highest, ctx.batch_size)
        except ValueError as exc:
            raise ConfigError(f"[methods.{self.name}] {exc}: lower forget_rate (an exponent below 1 ramps above it) "
                              "or raise batch_size") from None

    def forget_rate_at(self, epoch: int) -> float:
        """R(T) of the suite's 0-based ``epoch``: entry ``epoch + 1`` of the official plan."""
        return float(self.schedule[epoch + 1])

    def train_epoch(self, ctx: TrainContext, epoch: int) -> dict[str, float]:
        rate = self.forget_rate_at(epoch)
        if len(ctx.epoch_indices) < ctx.batch_size:
            raise ConfigError(f"[methods.{self.name}] {len(ctx.epoch_indices)} training samples make no full batch "
                              f"of {ctx.batch_size}; the last partial batch is dropped as in the official loaders: "
                              "lower batch_size")
        self._judged, self._kept = [], []
        for batch in ctx.train_batches(drop_last=True):
            for judged, kept in self.step(ctx, batch, rate):
                self._judged.append(judged)
                self._kept.append(kept)
        return {"train_loss": ctx.mean_loss(), "forget_rate": rate,
                "num_remember": float(num_remember(rate, ctx.batch_size))}

    def step(self, ctx: TrainContext, batch: Batch, forget_rate: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Train on one batch; return each selection made as (batch indices, kept mask)."""
        raise NotImplementedError

    def predict_heads(self, ctx: TrainContext, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The second network's logits (``test_acc_net2``), which both papers log beside net 1's."""
        net2: nn.Module = ctx.nets[1]
        return {"net2": net2(x)}

    def selection(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """This epoch's judgements: every row of every batch once per selection made, and whether it was kept."""
        if not self._judged:
            return None
        return torch.cat(self._judged), torch.cat(self._kept)
