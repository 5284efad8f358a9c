"""JoCoR against its official code (hongxin001/JoCoR @ 86db359), the log-space KL, and the mechanics around it.

``ref_*`` functions are written from the official formulas (``algorithm/loss.py``), not copied: values and
gradients at float64 (rtol 1e-10, atol 1e-12) and float32 against the float64 reference (rtol 1e-5, atol 1e-6);
selections and keep counts exactly.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisybench.archs import create_model
from noisybench.config import Grid
from noisybench.conformance import Probe
from noisybench.errors import ConfigError
from noisybench.methods import jocor
from noisybench.methods.jocor import REFERENCE_FUNCTIONS, JoCoR, jocor_kl, jocor_loss, two_network_mean_last
from noisybench.optim import set_beta1, set_lr
from noisybench.plan import expand_grid
from noisybench.trainer import Trainer, accuracy, belief_stats
from tests.methods._helpers import setting, tiny_run

F64 = (torch.float64, 1e-10, 1e-12)
F32 = (torch.float32, 1e-5, 1e-6)


def _inputs(batch: int, classes: int, scale: float, seed: int = 0, absent: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits1 = torch.randn(batch, classes, generator=g, dtype=torch.float64) * scale
    logits2 = torch.randn(batch, classes, generator=g, dtype=torch.float64) * scale
    labels = torch.randint(0, classes - absent, (batch,), generator=g)
    return logits1, logits2, labels


# ------------------------------------------------------------------ the official formulas, re-derived
def ref_kl(pred: torch.Tensor, soft_targets: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """``kl_loss_compute``: ``F.kl_div(log_softmax(pred), softmax(soft_targets))`` summed over classes."""
    kl = F.kl_div(F.log_softmax(pred, dim=1), F.softmax(soft_targets, dim=1), reduction="none")
    return torch.mean(torch.sum(kl, dim=1)) if reduce else torch.sum(kl, 1)


def ref_loss_jocor(y1: torch.Tensor, y2: torch.Tensor, t: torch.Tensor, forget_rate: float, co_lambda: float):  # noqa: ANN201
    """``loss_jocor``: the joint per-sample loss, numpy argsort, ``int(remember_rate * B)``, the kept rows' mean."""
    loss_pick_1 = F.cross_entropy(y1, t, reduction="none") * (1 - co_lambda)
    loss_pick_2 = F.cross_entropy(y2, t, reduction="none") * (1 - co_lambda)
    loss_pick = loss_pick_1 + loss_pick_2 + co_lambda * ref_kl(y1, y2, False) + co_lambda * ref_kl(y2, y1, False)
    ind_sorted = np.argsort(loss_pick.detach().numpy())
    remember = int((1 - np.float64(forget_rate)) * len(ind_sorted))
    ind_update = ind_sorted[:remember]
    return torch.mean(loss_pick[torch.as_tensor(ind_update)]), set(ind_update.tolist()), loss_pick, remember


CASES = [  # (batch, classes, scale, forget rate, co_lambda, classes absent)
    (16, 10, 3.0, 0.2, 0.9, 0),
    (16, 10, 3.0, 0.45, 0.65, 3),  # three classes absent from the batch
    (16, 10, 100.0, 0.5, 0.9, 0),  # extreme logits: the official float32 KL gradient is NaN here
    (10, 10, 3.0, 0.8, 0.1, 0),  # (1 - 0.8) * 10 = 1.999...: one row kept
    (32, 100, 3.0, 0.0, 0.85, 0),
    (16, 10, 3.0, 0.3, 0.0, 0),  # lambda 0: two cross-entropies
]


@pytest.mark.parametrize(("dtype", "rtol", "atol"), [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize(("batch", "classes", "scale", "rate", "lam", "absent"), CASES)
def test_joint_loss_selection_and_gradients_equal_the_official_formula(dtype, rtol, atol, batch, classes, scale, rate,
                                                                       lam, absent) -> None:
    logits1, logits2, labels = _inputs(batch, classes, scale, absent=absent)
    z1, z2 = logits1.clone().requires_grad_(True), logits2.clone().requires_grad_(True)
    loss, kept, per_sample, remember = ref_loss_jocor(z1, z2, labels, rate, lam)  # float64: finite even at scale 100
    assert len(set(per_sample.tolist())) == batch
    loss.backward()
    w1, w2 = logits1.to(dtype).clone().requires_grad_(True), logits2.to(dtype).clone().requires_grad_(True)
    out = jocor_loss(w1, w2, labels, rate, lam)
    out.loss.backward()
    assert out.num_remember == remember and set(out.keep.nonzero().flatten().tolist()) == kept
    assert out.loss.dtype == dtype and torch.isfinite(w1.grad).all() and torch.isfinite(w2.grad).all()
    torch.testing.assert_close(out.loss.detach(), loss.detach().to(dtype), rtol=rtol, atol=atol)
    torch.testing.assert_close(out.per_sample.detach(), per_sample.detach().to(dtype), rtol=rtol, atol=atol)
    torch.testing.assert_close(w1.grad, z1.grad.to(dtype), rtol=rtol, atol=atol)
    torch.testing.assert_close(w2.grad, z2.grad.to(dtype), rtol=rtol, atol=atol)


@pytest.mark.parametrize(("dtype", "rtol", "atol"), [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("scale", [3.0, 30.0, 100.0])
@pytest.mark.parametrize("reduce", [True, False])
def test_kl_both_directions_and_both_gradients(dtype, rtol, atol, scale: float, reduce: bool) -> None:
    a, b, _ = _inputs(16, 10, scale, seed=1)
    for pred, target in ((a, b), (b, a)):
        p64, t64 = pred.clone().requires_grad_(True), target.clone().requires_grad_(True)
        ref = ref_kl(p64, t64, reduce)
        ref_grads = torch.autograd.grad(ref.sum(), (p64, t64))
        p, t = pred.to(dtype).clone().requires_grad_(True), target.to(dtype).clone().requires_grad_(True)
        ours = jocor_kl(p, t, reduce)
        grads = torch.autograd.grad(ours.sum(), (p, t))
        assert ours.shape == ref.shape and ours.dtype == dtype
        # float32: atol relative to the largest per-row KL (at least 1). Each gradient entry q_c (log q_c - log p_c
        # - KL) cancels terms of the KL's size, which reaches hundreds at logit scale 100, and float32 resolves
        # about 6e-8 of it (the official formula errs as much where it is finite; at scale >= 30 it is NaN).
        size = max(1.0, float(ref_kl(pred, target, False).abs().max())) if dtype == torch.float32 else 1.0
        torch.testing.assert_close(ours.detach(), ref.detach().to(dtype), rtol=rtol, atol=atol * size)
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g, r.to(dtype), rtol=rtol, atol=atol * size)


def test_the_official_kl_would_give_nan_gradients_in_float32() -> None:
    """A logit gap beyond ~104 makes a float32 softmax entry exactly 0: the official KL's backward through its
    target is then 0 * -inf = NaN; the log-space KL stays finite and equal to the float64 official gradient."""
    target = torch.tensor([[120.0, 0.0, -5.0], [1.0, 2.0, 3.0]])
    pred = torch.tensor([[0.5, 1.0, 0.0], [3.0, 2.0, 1.0]])
    assert (F.softmax(target, dim=1) == 0).any()
    t32 = target.clone().requires_grad_(True)
    ref_kl(pred, t32).backward()
    assert torch.isnan(t32.grad).any()  # what the official code back-propagates
    t64 = target.double().requires_grad_(True)
    ref_kl(pred.double(), t64).backward()
    assert torch.isfinite(t64.grad).all()  # float64 does not underflow at this gap
    ours = target.clone().requires_grad_(True)
    jocor_kl(pred, ours).backward()
    torch.testing.assert_close(ours.grad, t64.grad.float(), rtol=1e-5, atol=1e-6)
    # and through the whole loss: the official joint loss in float32 poisons both networks' gradients
    logits1, logits2, labels = _inputs(16, 10, 100.0)
    z1, z2 = logits1.float().requires_grad_(True), logits2.float().requires_grad_(True)
    ref_loss_jocor(z1, z2, labels, 0.5, 0.9)[0].backward()
    assert torch.isnan(z1.grad).any() and torch.isnan(z2.grad).any()


def test_reference_functions_are_the_module_numerics() -> None:
    assert REFERENCE_FUNCTIONS == (jocor.jocor_loss, jocor.jocor_kl)
    assert [f.name for f in dataclasses.fields(jocor.JoCoROutput)] == ["loss", "keep", "per_sample", "num_remember"]


def test_a_selection_that_keeps_nothing_is_refused_not_nan() -> None:
    logits1, logits2, labels = _inputs(10, 10, 3.0)
    with pytest.raises(ValueError, match="keeps int"):
        jocor_loss(logits1, logits2, labels, 0.95, 0.9)


# ------------------------------------------------------------------ one Adam over both networks
def test_two_adams_equal_one_adam_over_both_networks_bit_for_bit() -> None:
    """The official code steps one Adam over both networks; the suite steps each network's own Adam in the same
    call. Adam is elementwise: 20 steps of jocor_loss with the lr tail and beta_1 switch give identical weights."""
    torch.manual_seed(0)
    nets = [create_model("mlp", (8,), 4, hidden=[16]) for _ in range(2)]
    twin = copy.deepcopy(nets)
    one = torch.optim.Adam([*twin[0].parameters(), *twin[1].parameters()], lr=1e-3)
    two = [torch.optim.Adam(n.parameters(), lr=1e-3) for n in nets]
    g = torch.Generator().manual_seed(1)
    for step in range(20):
        lr, beta1 = (1e-3, 0.9) if step < 10 else (1e-3 * (20 - step) / 10, 0.1)
        for opt in (one, *two):
            set_lr(opt, lr)
            set_beta1(opt, beta1)
        x, y = torch.randn(32, 8, generator=g), torch.randint(0, 4, (32,), generator=g)
        one.zero_grad()
        jocor_loss(twin[0](x), twin[1](x), y, 0.3, 0.9).loss.backward()
        one.step()
        for opt in two:
            opt.zero_grad()
        jocor_loss(nets[0](x), nets[1](x), y, 0.3, 0.9).loss.backward()
        for opt in two:
            opt.step()
        for a, b in zip([*nets[0].state_dict().values(), *nets[1].state_dict().values()],
                        [*twin[0].state_dict().values(), *twin[1].state_dict().values()]):
            assert torch.equal(a, b), f"step {step}"


# ------------------------------------------------------------------ hyperparameters and recipes
@pytest.mark.parametrize(("dataset", "noise", "rate", "protocol", "expected"), [
    ("cifar10", "sym-draw", 0.5, "paper", (0.5, "paper-default", 0.9, "paper")),
    ("cifar10", "sym-draw", 0.8, "paper", (0.8, "paper-default", 0.65, "paper")),
    ("cifar10", "asym", 0.4, "paper", (0.2, "paper-default", 0.9, "paper")),  # tau halved for asymmetric noise
    ("cifar10", "pairflip-draw", 0.45, "paper", (0.45, "paper-default", 0.9, "suite")),  # not halved
    ("cifar10", "sym-draw", 0.3, "paper", (0.3, "paper-default", 0.9, "suite")),  # nearest README row
    ("cifar100", "sym-draw", 0.5, "paper", (0.5, "paper-default", 0.85, "paper-default")),
    ("cifar10", "sym-draw", 0.5, "shared", (0.2, "suite", 0.9, "suite")),
    ("digits", "asym", 0.4, "paper", (0.2, "paper-default", 0.9, "suite")),
])
def test_forget_rate_and_lambda_per_setting(dataset, noise, rate, protocol, expected) -> None:
    classes = 100 if dataset == "cifar100" else 10
    paper_epochs = 199 if dataset.startswith("cifar") else None
    values, sources = JoCoR.resolve_hparams(setting(dataset, noise, rate, classes, 199 if paper_epochs else 40,
                                                    paper_epochs=paper_epochs, protocol=protocol))
    assert (values["forget_rate"], sources["forget_rate"], values["co_lambda"], sources["co_lambda"]) == expected


@pytest.mark.parametrize(("key", "value"), [("co_lambda", 1.5), ("co_lambda", -0.1), ("forget_rate", 1.0)])
def test_bad_hyperparameters_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        JoCoR.resolve_hparams(setting("cifar10", "sym", 0.5, 10, 199), {key: value})


def test_every_search_space_corner_passes_the_checks() -> None:
    s = setting("cifar10", "sym-draw", 0.5, 10, 199, paper_epochs=199)
    space = JoCoR.search_space(s)
    assert set(space) == {"forget_rate", "num_gradual", "exponent", "co_lambda"}
    for u in (0.0, 0.5, 1.0):
        JoCoR.resolve_hparams(s, {k: dim.value_at(u) for k, dim in space.items()})


@pytest.mark.parametrize(("dataset", "decay_start"), [("cifar10", 80), ("cifar100", 100)])
def test_paper_recipe_is_jocors_own(dataset: str, decay_start: int) -> None:
    grid = Grid(name="p", datasets=[dataset], methods=["jocor"], noise=["sym-draw:0.5"], seeds=[1],
                train={"protocol": "paper"})
    run = expand_grid(grid)[0]
    t = run.train
    assert (t.arch, t.epochs, t.optimizer, t.lr, t.weight_decay, t.batch_size) == ("jocor_cnn", 199, "adam", 1e-3, 0.0,
                                                                                   128)
    assert (t.schedule, t.milestones, t.adam_beta1_tail) == ("linear-tail", [decay_start - 1], 0.1)
    assert (t.augment, t.normalize, t.val_fraction) == (False, False, 0.0)
    assert "algorithm/jocor.py:64-65" in run.train_refs["optimizer"]


# ------------------------------------------------------------------ through the trainer
class _Keeping(Trainer):
    def setup(self):  # noqa: ANN201
        self.ctx, self.method = super().setup()
        return self.ctx, self.method


def test_second_network_is_recorded_and_gives_the_papers_number() -> None:
    trainer = _Keeping(tiny_run("jocor", epochs=3))
    out = trainer.run()
    history = out["history"]
    ctx = trainer.ctx
    with ctx.eval_mode():
        net2_acc = accuracy(ctx.logits_on(ctx.nets[1], ctx.data.x_test), ctx.data.y_test)
        net1_acc = accuracy(ctx.logits_on(ctx.nets[0], ctx.data.x_test), ctx.data.y_test)
    assert history[-1]["test_acc_net2"] == net2_acc and history[-1]["test_acc"] == net1_acc
    expected = np.mean([h[k] for h in history[-2:] for k in ("test_acc", "test_acc_net2")])
    assert two_network_mean_last(history, k=2) == pytest.approx(expected)
    assert out["metrics"]["mean_last_k"] == pytest.approx(np.mean([h["test_acc"] for h in history]))  # net 1 only


def test_one_selection_per_batch_scored_by_the_trainer(monkeypatch) -> None:
    outs: list[Any] = []

    def recording(*args: Any) -> Any:
        out = jocor_loss(*args)
        outs.append(out)
        return out

    monkeypatch.setattr(jocor, "jocor_loss", recording)
    trainer = Trainer(tiny_run("jocor", {"forget_rate": 0.4, "num_gradual": 0}, epochs=1))
    ctx, method = trainer.setup()
    ctx.begin_epoch(0)
    stats = method.train_epoch(ctx, 0)
    indices, kept = method.selection()
    assert len(indices) == len(outs) * ctx.batch_size and torch.equal(kept, torch.cat([o.keep for o in outs]))
    assert stats["num_remember"] == int((1 - 0.4) * ctx.batch_size) == int(kept.sum()) / len(outs)
    clean = trainer._clean
    truly = ctx.y_noisy[indices] == clean[indices]
    scored = belief_stats(method, ctx.y_noisy, clean)
    assert scored["select_precision"] == pytest.approx(float((kept & truly).sum() / kept.sum()))


def test_exact_resume_mid_ramp_across_the_beta1_switch() -> None:
    train = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "linear-tail", "milestones": [2],
             "adam_beta1_tail": 0.1, "epochs": 5}
    probe = Probe("jocor", {"forget_rate": 0.4, "num_gradual": 4}, train=train)
    for stop in (1, 3):
        result = probe.resume(stop_after=stop)
        assert result.ok, result.detail


def test_published_numbers_carry_their_metric_and_noise_convention() -> None:
    """JoCoR's CIFAR-N numbers come from the CIFAR-N benchmark's own protocol, and Co-teaching's official README
    does not say which epochs its numbers summarise: none may stand beside a paper-protocol run as comparable."""
    from noisybench.reporting.published import load_published

    rows = load_published()
    jocor_rows = [r for r in rows if r["method"] == "jocor"]
    assert {(r["dataset"], r["noise_family"], r["value"]) for r in jocor_rows} == {("cifar10n", "real", 91.44),
                                                                                   ("cifar10n", "real", 90.3)}
    assert {(r["metric"], r["protocol"], r["tag"]) for r in jocor_rows} == {("unspecified", "other", "s")}
    coteaching_rows = [r for r in rows if r["method"] == "co-teaching" and r["protocol"] == "paper"]
    assert {r["noise_family"] for r in coteaching_rows} == {"sym-draw", "pairflip-draw"}
    assert len(coteaching_rows) == 9 and {r["metric"] for r in coteaching_rows} == {"unspecified"}
