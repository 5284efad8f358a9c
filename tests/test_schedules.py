"""Learning-rate schedules against PyTorch's schedulers and the official plans they port (noisybench.schedules)."""

from __future__ import annotations

import math

import pytest
import torch

from noisybench.config import TrainConfig
from noisybench.errors import ConfigError
from noisybench.schedules import beta1_at, lr_at, phase_of, step_lr


def _torch_rates(scheduler_cls: type, epochs: int, lr: float, **kwargs: float) -> list[float]:
    """The rate each epoch trains at when a PyTorch scheduler is stepped once per epoch."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = scheduler_cls(opt, **kwargs)
    rates = []
    for _ in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


@pytest.mark.parametrize("eta_min", [0.0, 2e-4, 0.02 / 100])
def test_cosine_with_a_floor_is_pytorchs_cosine_annealing(eta_min: float) -> None:
    train = TrainConfig(epochs=300, lr=0.02, schedule="cosine", eta_min=eta_min)
    ours = [lr_at(train, e) for e in range(300)]
    recursive = _torch_rates(torch.optim.lr_scheduler.CosineAnnealingLR, 300, 0.02, T_max=300, eta_min=eta_min)
    assert ours == pytest.approx(recursive, rel=1e-9, abs=1e-15)
    closed = [eta_min + (0.02 - eta_min) * (1 + math.cos(math.pi * e / 300)) / 2 for e in range(300)]
    assert ours == closed  # the closed form, bit for bit
    assert min(ours) >= eta_min and ours[0] == 0.02


def test_eta_min_zero_keeps_the_old_cosine_bit_for_bit() -> None:
    train = TrainConfig(epochs=40, lr=0.05, schedule="cosine")
    assert [lr_at(train, e) for e in range(40)] == [0.05 * 0.5 * (1 + math.cos(math.pi * e / 40)) for e in range(40)]


def test_warm_restarts_are_pytorchs_cosine_annealing_warm_restarts() -> None:
    train = TrainConfig(epochs=150, lr=0.02, schedule="cosine-restarts", restart_every=10, eta_min=0.001)
    ours = [lr_at(train, e) for e in range(150)]
    reference = _torch_rates(torch.optim.lr_scheduler.CosineAnnealingWarmRestarts, 150, 0.02, T_0=10, eta_min=0.001)
    assert ours == pytest.approx(reference, rel=1e-12)
    assert ours[0] == ours[10] == ours[140] == 0.02 and min(ours) > 0.001


def test_the_coteaching_plan_with_its_adam_beta1_switch() -> None:
    # The official plan (bhanML/Co-teaching main.py): 200 entries, decay start 80, read at epochs 1..199.
    n_epoch, start, lr = 200, 80, 0.001
    alpha_plan, beta1_plan = [lr] * n_epoch, [0.9] * n_epoch
    for i in range(start, n_epoch):
        alpha_plan[i] = float(n_epoch - i) / (n_epoch - start) * lr
        beta1_plan[i] = 0.1
    train = TrainConfig(epochs=199, lr=lr, optimizer="adam", weight_decay=0.0, schedule="linear-tail",
                        milestones=[start - 1], adam_beta1_tail=0.1)
    for official in range(1, n_epoch):
        assert lr_at(train, official - 1) == alpha_plan[official], official
        assert beta1_at(train, official - 1) == beta1_plan[official], official
    assert lr_at(train, 198) == lr / 120  # never reaches zero


def test_without_a_beta1_tail_beta1_is_left_alone() -> None:
    assert beta1_at(TrainConfig(epochs=10, optimizer="adam", schedule="linear-tail", milestones=[5]), 7) is None


def test_keras_inverse_time_decay_over_a_step_plan() -> None:
    # Keras SGD(decay=d) under a per-epoch LearningRateScheduler: lr_t = plan[epoch] / (1 + d * t), t never reset.
    train = TrainConfig(epochs=3, lr=0.1, schedule="step", milestones=[1, 2], gamma=0.1, lr_decay_per_step=5e-3)
    plan, steps_per_epoch, t = [0.1, 0.01, 0.001], 3, 0
    for epoch in range(3):
        assert lr_at(train, epoch) == pytest.approx(plan[epoch], rel=1e-15)
        for _ in range(steps_per_epoch):
            assert step_lr(lr_at(train, epoch), 5e-3, t) == pytest.approx(plan[epoch] / (1 + 5e-3 * t), rel=1e-15)
            t += 1


def test_phases_restart_the_schedule_at_every_boundary() -> None:
    train = TrainConfig(epochs=5, lr=0.1, schedule="step", milestones=[1], gamma=0.1, phases=[
        {"epochs": 2}, {"epochs": 3, "lr": 1e-6, "schedule": "constant", "momentum": 0.9}])
    assert [phase_of(train, e) for e in range(5)] == [0, 0, 1, 1, 1]
    assert [lr_at(train, e) for e in range(5)] == pytest.approx([0.1, 0.01, 1e-6, 1e-6, 1e-6])


@pytest.mark.parametrize(("values", "match"), [
    ({"schedule": "cosine-restarts"}, "restart_every"),
    ({"schedule": "cosine-restarts", "restart_every": 0}, "restart_every"),
    ({"restart_every": 10}, "restart_every is the period"),
    ({"eta_min": 0.5, "lr": 0.1}, "eta_min must be"),
    ({"eta_min": 0.001, "schedule": "step", "milestones": [3]}, "eta_min is the floor"),
    ({"schedule": "linear-tail"}, "linear-tail"),
    ({"schedule": "linear-tail", "milestones": [50], "epochs": 40}, "linear-tail"),
    ({"adam_beta1_tail": 0.1}, "adam_beta1_tail"),
    ({"adam_beta1_tail": 1.5, "optimizer": "adam", "schedule": "linear-tail", "milestones": [3]}, "in \\[0, 1\\)"),
    ({"lr_decay_per_step": -1.0}, "lr_decay_per_step"),
    ({"schedule": "exponential"}, "schedule must be one of"),
    ({"grad_clip_norm": 0.0}, "grad_clip_norm"),
    ({"weight_decay_by_module": {"fc1": -1.0}}, "weight_decay_by_module values"),
    ({"augment": ""}, "augment"),
    ({"phases": [{"epochs": 2}, {"epochs": 2}]}, "the phases train 4 epochs but epochs = 40"),
    ({"phases": [{"epochs": 40, "batch_size": 3}]}, "cannot change between phases"),
    ({"phases": [{"epochs": 0}]}, "epochs must be an integer >= 1"),
    ({"epochs": 4, "phases": [{"epochs": 4, "schedule": "cosine-restarts"}]}, "phases\\[0\\].*restart_every"),
])
def test_bad_schedule_keys_are_refused_naming_the_key(values: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_dict(values, where="g.toml: [train]")
    with pytest.raises(ConfigError, match="g.toml: \\[train\\]"):
        TrainConfig.from_dict(values, where="g.toml: [train]")
