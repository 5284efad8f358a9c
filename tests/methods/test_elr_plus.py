"""ELR+ against the official formulas (shengliu66/ELR @ 934af53, ``ELR_plus/``), and the mechanics the formulas
cannot show: the EMA ramp and its shared step counter, the peer's EMA network in train mode, parameters-only
averaging, freshly initialised EMA networks, evaluation as the mean of both networks, exact resume.

Each ``ref_*`` function is written from the official code named in its docstring, not imported from it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisybench.config import Grid
from noisybench.conformance import Probe
from noisybench.errors import ConfigError
from noisybench.methods import elr_plus as elr_plus_module
from noisybench.methods.elr_plus import (
    ELRPlus,
    elr_plus_loss,
    ema_update,
    ema_weight,
    fresh_copy,
    mixup,
    sigmoid_rampup,
    update_targets,
)
from noisybench.plan import expand_grid
from noisybench.trainer import Trainer
from tests.methods._helpers import setting, tiny_run

F64 = (torch.float64, 1e-10, 1e-12)
F32 = (torch.float32, 1e-5, 1e-6)


def _close(ours: torch.Tensor, ref: torch.Tensor, rtol: float, atol: float) -> None:
    torch.testing.assert_close(ours.to(ref.dtype), ref, rtol=rtol, atol=atol)


def _rand(b: int, c: int, scale: float, seed: int) -> torch.Tensor:
    return torch.randn(b, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


# ------------------------------------------------------------------ reference formulas
def ref_sigmoid_rampup(current: float, rampup_length: float) -> float:
    """``utils/util.py`` ``sigmoid_rampup``."""
    if rampup_length == 0:
        return 1.0
    current = np.clip(current, 0.0, rampup_length)
    phase = 1.0 - current / rampup_length
    return float(np.exp(-5.0 * phase * phase))


def ref_update_hist(pred_hist: torch.Tensor, index: list[int], out: torch.Tensor, beta: float, mix_index: Any,
                    mixup_l: float) -> torch.Tensor:
    """``elr_plus_loss.update_hist``: the EMA of the normalised softmax into ``pred_hist`` (in place), returns q."""
    y_pred_ = F.softmax(out, dim=1)
    pred_hist[index] = beta * pred_hist[index] + (1 - beta) * y_pred_ / (y_pred_).sum(dim=1, keepdim=True)
    return mixup_l * pred_hist[index] + (1 - mixup_l) * pred_hist[index][mix_index]


def ref_forward(iteration: int, output: torch.Tensor, y_labeled: torch.Tensor, q: torch.Tensor, lam: float,
                coef_step: int, num_classes: int) -> torch.Tensor:
    """``elr_plus_loss.forward``."""
    y_pred = F.softmax(output, dim=1)
    y_pred = torch.clamp(y_pred, 1e-4, 1.0 - 1e-4)
    if num_classes == 100:
        y_labeled = y_labeled * q
        y_labeled = y_labeled / (y_labeled).sum(dim=1, keepdim=True)
    ce_loss = torch.mean(-torch.sum(y_labeled * F.log_softmax(output, dim=1), dim=-1))
    reg = ((1 - (q * y_pred).sum(dim=1)).log()).mean()
    return ce_loss + ref_sigmoid_rampup(iteration, coef_step) * (lam * reg)


def ref_mixup(x: torch.Tensor, y: torch.Tensor, lam: float, mix_index: torch.Tensor):  # noqa: ANN201
    """``Trainer._mixup_data`` after its draws."""
    return lam * x + (1 - lam) * x[mix_index, :], lam * y + (1 - lam) * y[mix_index, :]


def ref_update_ema_variables(model: torch.nn.Module, model_ema: torch.nn.Module, global_step: int, alpha_: float,
                             ema_step: int) -> None:
    """``Trainer.update_ema_variables`` with ``ema_update: true``."""
    alpha = ref_sigmoid_rampup(global_step + 1, ema_step) * alpha_
    for ema_param, param in zip(model_ema.parameters(), model.parameters()):
        ema_param.data.mul_(alpha).add_(param.data, alpha=1 - alpha)


# ------------------------------------------------------------------ sigmoid_rampup, mixup, targets
def test_sigmoid_rampup_equals_the_official_bit_for_bit() -> None:
    for current, length in [(0, 40000), (1, 40000), (2, 40000), (20000, 40000), (39999, 40000), (40000, 40000),
                            (70000, 40000), (-3, 10), (5, 0), (2.5, 7)]:
        assert sigmoid_rampup(current, length) == ref_sigmoid_rampup(current, length)
    assert sigmoid_rampup(1, 40000) == pytest.approx(math.exp(-5 * (1 - 1 / 40000) ** 2))
    assert sigmoid_rampup(40000, 40000) == 1.0 and sigmoid_rampup(3, 0) == 1.0


def test_ema_weight_rules() -> None:
    assert ema_weight(0, 0.997, 40000) == ref_sigmoid_rampup(1, 40000) * 0.997
    assert ema_weight(40000, 0.997, 40000) == 0.997
    assert ema_weight(0, 0.9999, 40000, "mean") == 0.0  # the running mean: min(1 - 1/(s+1), gamma)
    assert ema_weight(9, 0.9999, 40000, "mean") == pytest.approx(0.9)
    assert ema_weight(10**6, 0.9999, 40000, "mean") == 0.9999


@pytest.mark.parametrize("scale", [3.0, 100.0])
@pytest.mark.parametrize(("dtype", "rtol", "atol"), [F64, F32])
def test_target_update_and_mixed_targets(dtype: torch.dtype, rtol: float, atol: float, scale: float) -> None:
    hist = torch.softmax(_rand(20, 10, 1.0, 0), dim=1)
    index = [3, 7, 11, 0, 19, 5]
    out = _rand(6, 10, scale, 1)
    perm = torch.tensor([2, 0, 5, 1, 3, 4])
    ref_hist = hist.clone()
    ref_q = ref_update_hist(ref_hist, index, out, 0.7, perm, 0.8)
    rows = update_targets(hist[index].to(dtype), out.to(dtype), 0.7)
    assert rows.dtype == dtype
    _close(rows, ref_hist[index], rtol, atol)
    _close(mixup(rows, 0.8, perm), ref_q, rtol, atol)
    no_mix = ref_update_hist(hist.clone(), index, out, 0.7, ..., 1)  # warm-up call: q is the targets themselves
    _close(mixup(update_targets(hist[index], out, 0.7), 1.0, perm), no_mix, 1e-12, 1e-15)


def test_mixup_of_inputs_and_labels() -> None:
    x, y = _rand(6, 4, 1.0, 3), F.one_hot(torch.tensor([0, 1, 2, 3, 0, 1]), 4).double()
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    ref_x, ref_y = ref_mixup(x, y, 0.65, perm)
    assert torch.equal(mixup(x, 0.65, perm), ref_x) and torch.equal(mixup(y, 0.65, perm), ref_y)


# ------------------------------------------------------------------ elr_plus_loss
@pytest.mark.parametrize("quirk", [False, True])
@pytest.mark.parametrize("scale", [3.0, 100.0])
@pytest.mark.parametrize(("dtype", "rtol", "atol"), [F64, F32])
def test_loss_value_and_gradient(dtype: torch.dtype, rtol: float, atol: float, scale: float, quirk: bool) -> None:
    c = 100 if quirk else 10
    logits64 = _rand(12, c, scale, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 5, 5, 6, 6])  # most classes absent from the batch
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(5))
    onehot = mixup(F.one_hot(labels, c).double(), 0.7, perm)
    q = mixup(torch.softmax(_rand(12, c, 2.0, 6), dim=1), 0.7, perm)
    iteration, coef_step = 900, 40000 if quirk else 0
    z_ref = logits64.clone().requires_grad_(True)
    ref = ref_forward(iteration, z_ref, onehot, q, 3.0, coef_step, c)
    ref.backward()
    z = logits64.to(dtype).requires_grad_(True)
    loss = elr_plus_loss(z, onehot.to(dtype), q.to(dtype), 3.0, sigmoid_rampup(iteration, coef_step), quirk)
    loss.backward()
    assert loss.dtype == dtype and torch.isfinite(loss) and torch.isfinite(z.grad).all()
    _close(loss.detach(), ref.detach(), rtol, atol)
    _close(z.grad, z_ref.grad, rtol, atol)


def test_the_targets_are_constants_of_the_loss() -> None:
    z = _rand(4, 3, 1.0, 7).requires_grad_(True)
    q = torch.softmax(_rand(4, 3, 1.0, 8), dim=1).requires_grad_(True)
    elr_plus_loss(z, F.one_hot(torch.tensor([0, 1, 2, 0]), 3).double(), q, 3.0, 1.0, True).backward()
    assert q.grad is None and z.grad is not None


# ------------------------------------------------------------------ EMA
def _bn_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, 3))


def test_ema_update_averages_parameters_only_as_the_official() -> None:
    net, ema, ref_ema = _bn_net(0), _bn_net(1), _bn_net(1)
    ema[1].running_mean.fill_(0.25)
    ref_ema[1].running_mean.fill_(0.25)
    net(torch.randn(8, 4))  # moves the network's running statistics
    alpha = sigmoid_rampup(300 + 1, 40000) * 0.997
    ema_update(ema, net, alpha)
    ref_update_ema_variables(net, ref_ema, 300, 0.997, 40000)
    for mine, ref in zip(ema.state_dict().values(), ref_ema.state_dict().values()):
        assert torch.equal(mine, ref)
    assert torch.equal(ema[1].running_mean, torch.full((6,), 0.25))  # buffers untouched
    assert not torch.equal(ema[1].running_mean, net[1].running_mean)


def test_ema_networks_start_from_their_own_initialisation() -> None:
    net = _bn_net(0)
    torch.manual_seed(3)
    ema = fresh_copy(net)
    assert ema.training and not any(p.requires_grad for p in ema.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(ema.parameters(), net.parameters()) if a.dim() == 2)
    assert [a.shape for a in ema.parameters()] == [b.shape for b in net.parameters()]


# ------------------------------------------------------------------ hyperparameters and recipes
def test_hyperparameters_per_setting() -> None:
    def values(*args: Any, **kw: Any) -> dict[str, tuple[Any, str]]:
        return {k: (v.value, v.source) for k, v in ELRPlus.default_hparams(setting(*args, **kw)).items()}

    c10 = values("cifar10", "sym-dividemix", 0.5, 10, 200, paper_epochs=200)
    assert c10["beta"] == (0.7, "paper") and c10["lam"] == (3.0, "paper") and c10["ema_step"] == (40000, "paper")
    assert c10["coef_step"] == (0, "paper") and c10["ce_target_product"] == (False, "paper")
    asym = values("cifar10", "asym", 0.4, 10, 200, paper_epochs=200)
    assert (asym["beta"], asym["lam"]) == ((0.9, "paper"), (1.0, "paper"))
    c100 = values("cifar100", "sym-dividemix", 0.5, 100, 250, paper_epochs=250)
    assert (c100["beta"][0], c100["lam"][0], c100["coef_step"], c100["ce_target_product"]) == (
        0.9, 7.0, (40000, "paper"), (True, "paper"))
    shared = values("cifar10", "sym", 0.5, 10, 120, paper_epochs=200, protocol="shared")
    assert shared["ema_step"] == (None, "suite")  # the ramp keeps its share of the run's steps
    c100n = values("cifar100n", "human", None, 100, 250)
    assert c100n["ce_target_product"] == (True, "suite") and c100n["beta"] == (0.9, "suite")
    web = values("webvision", "human", None, 50, 100)
    assert web["mixup_alpha"][0] == 1.5 and web["ema_rampup"] == ("mean", "paper-default")


def test_scaled_ramps_keep_the_official_share_of_the_run() -> None:
    assert ELRPlus._scaled(40000, 123, 10) == 40000
    assert ELRPlus._scaled(None, 200 * 352, 10) == 40000  # the official run: 200 epochs of 352 steps
    assert ELRPlus._scaled(None, 250 * 352, 100) == 40000
    assert ELRPlus._scaled(None, 40 * 21, 10) == round(40000 * 840 / 70400)  # digits: 40 epochs of 21 steps


@pytest.mark.parametrize(("key", "value"), [("beta", 1.0), ("ema_rampup", "linear"), ("ema_step", -5),
                                            ("mixup_alpha", -1.0)])
def test_bad_hyperparameters_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        ELRPlus.resolve_hparams(setting("digits", "sym", 0.5, 10, 40), {key: value})


def test_search_space_points_pass_the_checks() -> None:
    s = setting("digits", "sym", 0.5, 10, 40)
    defaults = {k: v.value for k, v in ELRPlus.default_hparams(s).items()}
    for u in (0.0, 0.5, 1.0):
        ELRPlus.check_hparams({**defaults, **{k: d.value_at(u) for k, d in ELRPlus.search_space(s).items()}})


@pytest.mark.parametrize(("dataset", "epochs", "milestones"), [("cifar10", 200, [150]), ("cifar100", 250, [200])])
def test_paper_recipes(dataset: str, epochs: int, milestones: list[int]) -> None:
    grid = Grid(name="p", datasets=[dataset], methods=["elr-plus"], noise=["sym-dividemix:0.5"], seeds=[1],
                train={"protocol": "paper"}, source="p.toml")
    run = expand_grid(grid)[0]
    assert (run.train.arch, run.train.epochs, run.train.milestones, run.train.lr) == (
        "preact_resnet18", epochs, milestones, 0.02)
    assert set(run.train_sources.values()) == {"paper"} and run.hparams["ema_step"] == 40000


# ------------------------------------------------------------------ mechanics through the trainer
def test_ema_ramp_and_one_step_counter_for_both_networks(monkeypatch) -> None:
    calls: list[tuple[int, float]] = []
    real = elr_plus_module.ema_update

    def spy(ema_net, net, alpha):  # noqa: ANN001, ANN202
        calls.append((id(ema_net), alpha))
        real(ema_net, net, alpha)

    monkeypatch.setattr(elr_plus_module, "ema_update", spy)
    trainer = Trainer(tiny_run("elr-plus", {"ema_step": 50}, epochs=2))
    ctx, method = trainer.setup()
    per_epoch = math.ceil(ctx.num_train / ctx.batch_size)
    for epoch in range(2):
        ctx.begin_epoch(epoch)
        method.train_epoch(ctx, epoch)
    assert method.step == 2 * per_epoch  # advanced by network 1's steps only
    ema0, ema1 = id(method.ema[0]), id(method.ema[1])
    for epoch in range(2):
        block = calls[2 * epoch * per_epoch: 2 * (epoch + 1) * per_epoch]
        steps = [epoch * per_epoch + s for s in range(1, per_epoch + 1)]
        expected = [ref_sigmoid_rampup(s + 1, 50) * 0.997 for s in steps]
        assert [a for _, a in block[:per_epoch]] == expected  # network 1's EMA, then network 2's, same steps
        assert [a for _, a in block[per_epoch:]] == expected
        assert {i for i, _ in block[:per_epoch]} == {ema0} and {i for i, _ in block[per_epoch:]} == {ema1}
    assert expected[0] < 0.997 * 0.9 and calls[-1][1] == ref_sigmoid_rampup(2 * per_epoch + 1, 50) * 0.997


def test_peer_ema_predicts_in_train_mode_and_its_statistics_move() -> None:
    trainer = Trainer(tiny_run("elr-plus", epochs=1))
    ctx, method = trainer.setup()
    modes: list[tuple[int, bool]] = []
    for k, ema in enumerate(method.ema):
        ema.register_forward_pre_hook(lambda module, args, k=k: modes.append((k, module.training)))
    stats = [[b.clone() for b in ema.buffers()] for ema in method.ema]
    ctx.begin_epoch(0)
    method.train_epoch(ctx, 0)
    per_epoch = math.ceil(ctx.num_train / ctx.batch_size)
    assert modes == [(1, True)] * per_epoch + [(0, True)] * per_epoch  # network 1 learns from network 2's EMA
    for before, ema in zip(stats, method.ema):
        assert any(not torch.equal(a, b) for a, b in zip(before, ema.buffers()))


def test_evaluation_is_the_mean_of_both_networks() -> None:
    trainer = Trainer(tiny_run("elr-plus", epochs=1))
    ctx, method = trainer.setup()
    x = ctx.prepare(ctx.data.x_test[:7])
    with ctx.eval_mode():
        z1, z2 = ctx.nets[0](x), ctx.nets[1](x)
        assert torch.equal(method.predict(ctx, x), 0.5 * (z1 + z2))
        assert not torch.allclose(z1, z2)


def test_training_refines_targets_and_beats_its_start() -> None:
    out = Trainer(tiny_run("elr-plus", epochs=4, noise="sym:0.4")).run()
    history = out["history"]
    assert all(math.isfinite(r["train_loss"]) for r in history)
    assert history[-1]["refined_acc"] > 0.6 and history[-1]["test_acc"] > 60


def test_resume_mid_run_continues_exactly() -> None:
    result = Probe("elr-plus", {"ema_step": 20}, train={"epochs": 4}).resume(stop_after=2)
    assert result.ok, result.detail
