"""A recipe's learning-rate and Adam beta_1 schedules: pure functions of (recipe, epoch, step).

There is no scheduler state: the trainer asks for an epoch's value at every epoch start (and, only
where a recipe decays per step, for a step's), so a resumed run continues exactly. ``E`` is the
phase's number of epochs (the run's without ``phases``), ``e`` the 0-based epoch inside it.

``schedule`` (a recipe key):

* ``"constant"``: ``lr``.
* ``"step"``: ``lr * gamma ** (number of milestones <= e)``.
* ``"cosine"``: ``eta_min + (lr - eta_min) * (1 + cos(pi * e / E)) / 2``, PyTorch's
  ``CosineAnnealingLR(T_max=E, eta_min)`` stepped once per epoch.
* ``"cosine-restarts"``: the same within periods of ``restart_every`` epochs,
  ``eta_min + (lr - eta_min) * (1 + cos(pi * (e mod T) / T)) / 2`` with ``T = restart_every``:
  ``CosineAnnealingWarmRestarts(T_0=T, T_mult=1, eta_min)`` stepped once per epoch (ELR's shipped
  CIFAR-10 symmetric-noise config).
* ``"linear-tail"``: ``lr`` until epoch ``s = milestones[0]``, then ``lr * (E - e) / (E - s)``: the
  Co-teaching / JoCoR plan. With ``adam_beta1_tail`` Adam's beta_1 is 0.9 (PyTorch's default) before
  ``s`` and that value from ``s`` on. Ported as ``E = 199`` epochs with ``s = 79`` it is the official
  plan of 200 entries with decay start 80 read at official epochs 1..199 (official epoch = e + 1).

``lr_decay_per_step = d`` (any schedule) divides the epoch's rate by ``1 + d * t``, where ``t`` counts
the optimiser's steps so far, never reset within a phase: Keras' SGD ``decay`` on top of a per-epoch
``LearningRateScheduler`` (SCE's official code). It is the only per-step term; with ``d = 0`` the
trainer sets rates once per epoch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from noisybench.errors import ConfigError

if TYPE_CHECKING:
    from noisybench.config import TrainConfig

SCHEDULES = ("cosine", "step", "constant", "linear-tail", "cosine-restarts")
#: Adam's beta_1 before the tail of ``linear-tail`` (PyTorch's default, as in the Co-teaching code).
ADAM_BETA1 = 0.9
#: Keys a phase of a phased recipe may set (besides its ``epochs``): the optimiser and its schedule.
PHASE_KEYS = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "weight_decay_by_module", "schedule",
              "milestones", "gamma", "eta_min", "restart_every", "adam_beta1_tail", "lr_decay_per_step",
              "grad_clip_norm")


def phase_bounds(train: TrainConfig) -> list[int]:
    """First epoch of every phase, then the run's length (``[0, epochs]`` without phases)."""
    bounds = [0]
    for phase in train.phases:
        bounds.append(bounds[-1] + int(phase["epochs"]))
    return bounds if train.phases else [0, train.epochs]


def phase_of(train: TrainConfig, epoch: int) -> int:
    """Index of the phase that trains ``epoch`` (0 without phases)."""
    bounds = phase_bounds(train)
    return max(0, min(len(bounds) - 2, sum(epoch >= b for b in bounds[1:-1])))


def phase_config(train: TrainConfig, phase: int) -> TrainConfig:
    """The recipe of ``phase``: the run's recipe with the phase's keys, its epochs, and no phases."""
    if not train.phases:
        return train
    return dataclasses.replace(train, **train.phases[phase], phases=[])


def lr_at(train: TrainConfig, epoch: int) -> float:
    """Learning rate of run epoch ``epoch`` (before any per-step decay)."""
    phase = phase_of(train, epoch)
    config = phase_config(train, phase)
    return _epoch_lr(config, epoch - phase_bounds(train)[phase])


def _epoch_lr(train: TrainConfig, epoch: int) -> float:
    lr, schedule = train.lr, train.schedule
    if schedule == "cosine":
        return train.eta_min + (lr - train.eta_min) * 0.5 * (1 + math.cos(math.pi * epoch / train.epochs))
    if schedule == "cosine-restarts":
        period = int(train.restart_every or 1)
        return train.eta_min + (lr - train.eta_min) * 0.5 * (1 + math.cos(math.pi * (epoch % period) / period))
    if schedule == "step":
        return lr * train.gamma ** sum(epoch >= m for m in train.milestones)
    if schedule == "linear-tail":
        start = train.milestones[0]
        return lr if epoch < start else float(train.epochs - epoch) / (train.epochs - start) * lr
    return lr


def beta1_at(train: TrainConfig, epoch: int) -> float | None:
    """Adam's beta_1 for ``epoch`` when the recipe switches it (``adam_beta1_tail``), else None."""
    config = phase_config(train, phase_of(train, epoch))
    if config.adam_beta1_tail is None:
        return None
    local = epoch - phase_bounds(train)[phase_of(train, epoch)]
    return config.adam_beta1_tail if local >= config.milestones[0] else ADAM_BETA1


def step_lr(epoch_lr: float, decay: float, step: int) -> float:
    """Keras' per-iteration inverse-time decay: ``epoch_lr / (1 + decay * step)``."""
    return epoch_lr * (1.0 / (1.0 + decay * step))


def check_schedule(train: TrainConfig, where: str) -> None:
    """Refuse a schedule, or a schedule key, that does not fit (one line naming the key)."""
    problem = _schedule_problem(train)
    if problem:
        raise ConfigError(f"{where}: {problem}")


def _schedule_problem(train: TrainConfig) -> str:
    if train.schedule not in SCHEDULES:
        return f"schedule must be one of {', '.join(repr(s) for s in SCHEDULES)}, got {train.schedule!r}"
    restarts, tail = train.schedule == "cosine-restarts", train.schedule == "linear-tail"
    if not 0 <= train.eta_min < train.lr:
        return f"eta_min must be >= 0 and below lr ({train.lr:g}), got {train.eta_min!r}"
    if train.eta_min and train.schedule not in ("cosine", "cosine-restarts"):
        return f"eta_min is the floor of schedule 'cosine' or 'cosine-restarts', not of {train.schedule!r}; remove it"
    if restarts and not (isinstance(train.restart_every, int) and train.restart_every >= 1):
        return f"schedule 'cosine-restarts' needs restart_every = an integer >= 1 (epochs), got {train.restart_every!r}"
    if train.restart_every is not None and not restarts:
        return "restart_every is the period of schedule 'cosine-restarts'; set that schedule or remove restart_every"
    if tail and not (len(train.milestones) == 1 and 0 <= train.milestones[0] < train.epochs):
        return ("schedule 'linear-tail' needs milestones = [s] with 0 <= s < epochs (the epoch its linear decay "
                f"starts), got {train.milestones!r}")
    if train.adam_beta1_tail is not None:
        if not (tail and train.optimizer == "adam"):
            return "adam_beta1_tail switches Adam's beta_1 at the tail of schedule 'linear-tail' (optimizer 'adam')"
        if not 0 <= train.adam_beta1_tail < 1:
            return f"adam_beta1_tail must be in [0, 1), got {train.adam_beta1_tail!r}"
    if not train.lr_decay_per_step >= 0:
        return f"lr_decay_per_step must be >= 0, got {train.lr_decay_per_step!r}"
    return ""


def check_phases(train: TrainConfig, where: str) -> None:
    """Each phase names only :data:`PHASE_KEYS` and ``epochs >= 1``; the phases' epochs add up to ``epochs``;
    every phase's recipe passes :meth:`~noisybench.config.TrainConfig.validate`."""
    if not train.phases:
        return
    for i, phase in enumerate(train.phases):
        here = f"{where} phases[{i}]"
        unknown = sorted(set(phase) - {"epochs", *PHASE_KEYS})
        if unknown:
            raise ConfigError(f"{here}: {', '.join(unknown)} cannot change between phases; a phase sets epochs "
                              f"and any of {', '.join(PHASE_KEYS)}")
        if not (isinstance(phase.get("epochs"), int) and not isinstance(phase.get("epochs"), bool)
                and phase["epochs"] >= 1):
            raise ConfigError(f"{here}: epochs must be an integer >= 1, got {phase.get('epochs')!r}")
        type(train).from_dict({**_plain(train), **phase, "phases": []}, where=here)  # validates the phase's recipe
    total = phase_bounds(train)[-1]
    if total != train.epochs:
        raise ConfigError(f"{where}: the phases train {total} epochs but epochs = {train.epochs}; set epochs to "
                          "the sum of the phases' epochs (or change a phase's epochs)")


def _plain(train: TrainConfig) -> dict[str, Any]:
    return {f.name: getattr(train, f.name) for f in dataclasses.fields(train)}
