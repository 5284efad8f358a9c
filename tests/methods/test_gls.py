"""GLS: the official loss at every candidate smoothing rate (down to -8), the per-setting rates and recipes, and
the warm-up mechanics (selection on noisy validation, reset, exact resume across the switch, phases)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from noisybench.config import Grid
from noisybench.conformance import Probe, probe_run
from noisybench.errors import ConfigError
from noisybench.methods import gls
from noisybench.plan import expand_grid
from noisybench.schedules import lr_at, phase_config
from noisybench.trainer import Trainer
from tests.methods._helpers import batch, fake_context, setting
from tests.methods._loss_refs import assert_reference, inputs, ref_gls

CASES = [(0, 3.0, ()), (1, 3.0, (0, 3, 6)), (2, 100.0, ()), (3, 100.0, (9,))]  # scale 100; absent classes


@pytest.mark.parametrize("rate", gls.CANDIDATE_RATES)
def test_gls_loss_equals_the_official_formula_at_every_candidate_rate(rate: float) -> None:
    for seed, scale, absent in CASES:
        logits, labels = inputs(seed, scale, absent)
        for wa, wb in [(0.0, 1.0), (1.0, 1.0), (0.0, 0.5), (1.0, 0.5)]:
            assert_reference(lambda z: gls.gls_loss(z, labels, rate, wa, wb),  # noqa: B023
                             lambda z: ref_gls(z, labels, rate, wa, wb), logits)  # noqa: B023


def test_special_cases_are_ce_and_plain_label_smoothing() -> None:
    logits, labels = inputs(7)
    ce = F.cross_entropy(logits, labels)
    torch.testing.assert_close(gls.gls_loss(logits, labels, 0.0), ce, rtol=1e-14, atol=0)
    torch.testing.assert_close(gls.gls_loss(logits, labels, 0.0, 1.0, 0.0), ce, rtol=1e-14, atol=0)
    torch.testing.assert_close(gls.gls_loss(logits, labels, 0.6),
                               F.cross_entropy(logits, labels, label_smoothing=0.6), rtol=1e-12, atol=0)


def test_negative_smoothing_at_extreme_logits_is_finite_and_very_negative() -> None:
    logits, labels = inputs(8, scale=100.0)
    confident = logits.clone()
    confident[torch.arange(len(labels)), labels] = 1000.0  # the label far ahead: NLS rewards pushing the rest down
    for dtype in (torch.float64, torch.float32):
        loss = gls.gls_loss(confident.to(dtype), labels, -8.0)
        assert math.isfinite(float(loss)) and float(loss) < -500
    z = confident.clone().requires_grad_(True)
    gls.gls_loss(z, labels, -8.0).backward()
    assert torch.isfinite(z.grad).all()


def test_reference_functions_and_the_warm_up_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gls.REFERENCE_FUNCTIONS == (gls.gls_loss,)
    calls, original = [], gls.gls_loss

    def spy(logits, labels, smooth_rate, wa=0.0, wb=1.0):  # noqa: ANN001, ANN202
        calls.append((smooth_rate, wa, wb))
        return original(logits, labels, smooth_rate, wa, wb)

    monkeypatch.setattr(gls, "gls_loss", spy)
    net = torch.nn.Linear(4, 3)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 2, 1, 0])
    method = gls.GLS(smooth_rate=-2.0, wa=0.5, wb=1.0, warmup=1)
    ctx = fake_context(y, 3, net)
    method.setup(ctx)
    warm = method.training_step(ctx, batch(x, y, torch.arange(6)), 0)
    torch.testing.assert_close(warm, F.cross_entropy(net(x), y))  # main_warmup.py: wa = 1, wb = 0
    method.in_warmup = False
    method.training_step(ctx, batch(x, y, torch.arange(6)), 1)
    assert calls == [(0.0, 1.0, 0.0), (-2.0, 0.5, 1.0)]


@pytest.mark.parametrize(("bad", "match"), [({"smooth_rate": 1.0}, "below 1"), ({"smooth_rate": math.nan}, "finite"),
                                            ({"wa": 0.0, "wb": 0.0}, "not both 0"), ({"wb": -1.0}, ">= 0"),
                                            ({"warmup": -1}, "warmup"), ({"warmup": True}, "warmup"),
                                            ({"warmup": 2.5}, "warmup")])
def test_check_hparams_refuses(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        gls.GLS.check_hparams({**gls.GLS.hparams, **bad})


def test_search_space_is_the_papers_candidate_rates() -> None:
    space = gls.GLS.search_space(setting("cifar10", "sym", 0.4, 10, 220))
    assert space["smooth_rate"].values == gls.CANDIDATE_RATES and space["smooth_rate"].source == "paper"
    assert min(gls.CANDIDATE_RATES) == -8.0
    for rate in gls.CANDIDATE_RATES:
        gls.GLS.check_hparams({**gls.GLS.hparams, "smooth_rate": rate})


def _hp(**kw) -> dict:  # noqa: ANN003
    return {k: (v.value, v.source) for k, v in gls.GLS.default_hparams(setting(**kw)).items()}


def test_default_rates_and_warm_up_per_setting() -> None:
    low = _hp(dataset="cifar10", family="sym", rate=0.2, num_classes=10, epochs=200)
    assert low["smooth_rate"] == (0.6, "paper-default") and low["warmup"] == (0, "paper")
    high = _hp(dataset="cifar100", family="sym", rate=0.6, num_classes=100, epochs=220, paper_epochs=220)
    assert high["smooth_rate"] == (-6.0, "paper-default") and high["warmup"] == (120, "paper")
    shorter = _hp(dataset="cifar10", family="sym", rate=0.6, num_classes=10, epochs=110, paper_epochs=220)
    assert shorter["warmup"] == (60, "suite") and shorter["smooth_rate"][0] == -6.0
    for dataset in ("digits", "mnist1d"):  # shared protocol: NLS at ordinary rates diverges; PLS, direct
        quick = _hp(dataset=dataset, family="sym", rate=0.8, num_classes=10, epochs=40, protocol="shared")
        assert quick["smooth_rate"] == (0.6, "suite") and quick["warmup"] == (0, "suite")
    shared_cifar = _hp(dataset="cifar10", family="sym", rate=0.8, num_classes=10, epochs=120, protocol="shared")
    assert shared_cifar["smooth_rate"] == (0.6, "suite")
    human = _hp(dataset="cifar10n", family="human", rate=None, num_classes=10, epochs=100, noise_arg="worst")
    assert human["smooth_rate"] == (0.6, "paper-default") and human["warmup"][0] == 0
    assert _hp(dataset="cifar10", family="sym", rate=0.2, num_classes=10, epochs=200)["wb"] == (1.0, "paper-default")


def test_paper_recipe_is_chosen_by_the_noise_rate() -> None:
    runs = expand_grid(Grid(name="p", datasets=["cifar10", "cifar100"], methods=["gls"],
                            noise=["sym:0.2", "sym-draw:0.4", "asym:0.4"], seeds=[1], train={"protocol": "paper"}))
    by = {(r.dataset.name, r.noise): r for r in runs}
    direct = by[("cifar10", "sym:0.2")]
    assert (direct.train.epochs, direct.train.milestones, direct.train.nesterov, direct.train.phases) == \
        (200, [100, 150], True, [])
    assert direct.hparams["smooth_rate"] == 0.6 and direct.hparams["warmup"] == 0
    for key in [("cifar10", "sym-draw:0.4"), ("cifar100", "sym-draw:0.4"), ("cifar100", "asym:0.4")]:
        run = by[key]
        assert run.train.epochs == 220 and len(run.train.phases) == 2
        assert run.hparams["smooth_rate"] == -6.0 and run.hparams["warmup"] == 120
        assert run.hparam_sources["warmup"] == "paper" and run.train_sources["phases"] == "paper"
        plan = [lr_at(run.train, e) for e in range(220)]
        assert plan == [0.1] * 40 + [pytest.approx(0.01)] * 40 + [pytest.approx(0.001)] * 40 + [1e-6] * 100
        warm, second = phase_config(run.train, 0), phase_config(run.train, 1)
        assert (warm.momentum, warm.weight_decay, warm.nesterov) == (0.0, 0.0, False)
        assert (second.momentum, second.weight_decay, second.nesterov, second.schedule) == (0.9, 1e-4, True,
                                                                                              "constant")
    human = expand_grid(Grid(name="p", datasets=["cifar10n"], methods=["gls"], noise=["human:worst"], seeds=[1],
                             train={"protocol": "paper"}))[0]
    assert (human.train.epochs, human.train.milestones, human.train.weight_decay) == (100, [60], 5e-4)
    assert human.train_sources["epochs"] == "paper-default"


def test_warm_up_keeps_the_best_noisy_validation_state_and_resets_to_it() -> None:
    net = torch.nn.Linear(3, 2)
    y = torch.tensor([0, 1])
    ctx = fake_context(y, 2, net)
    method = gls.GLS(smooth_rate=-6.0, warmup=3)
    method.setup(ctx)
    states = []
    for epoch, val in enumerate([50.0, 70.0, 70.0]):  # a tie keeps the earlier epoch, as the official `acc > best`
        with torch.no_grad():
            net.weight.add_(1.0)
        states.append(copy.deepcopy(net.state_dict()))
        ctx.last_val_acc = val
        method.end_epoch(ctx, epoch)
    assert method.best_epoch == 1 and method.in_warmup
    assert method._end_warmup(ctx) == 1
    torch.testing.assert_close(net.state_dict()["weight"], states[1]["weight"])
    assert not method.in_warmup and method.best_state is None
    ctx.last_val_acc = 99.0
    method.end_epoch(ctx, 3)
    assert method.best_epoch == 1  # no tracking after the warm-up


def test_without_a_validation_split_the_last_warm_up_epoch_is_kept() -> None:
    net = torch.nn.Linear(3, 2)
    ctx = fake_context(torch.tensor([0, 1]), 2, net)
    method = gls.GLS(warmup=2)
    method.setup(ctx)
    for epoch in range(2):
        ctx.last_val_acc = math.nan
        method.end_epoch(ctx, epoch)
    assert method.best_epoch == 1


def test_a_run_trains_ce_then_gls_from_the_selected_warm_up_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    original = gls.GLS._end_warmup

    def checked(self, ctx):  # noqa: ANN001, ANN202
        best = copy.deepcopy(self.best_state)
        epoch = original(self, ctx)
        seen["equal"] = all(torch.equal(v, best[k]) for k, v in ctx.nets[0].state_dict().items())
        return epoch

    monkeypatch.setattr(gls.GLS, "_end_warmup", checked)
    out = Trainer(probe_run("gls", {"smooth_rate": -1.0, "warmup": 3}, epochs=5)).run()
    history = out["history"]
    vals = [row["val_acc"] for row in history[:3]]
    assert history[3]["warmup_best_epoch"] == vals.index(max(vals))
    assert seen["equal"] and all("warmup_best_epoch" not in row for row in history[:3] + history[4:])
    assert all(math.isfinite(row["train_loss"]) for row in history)


@pytest.mark.parametrize("stop_after", [1, 2])
def test_resume_is_exact_before_at_and_after_the_switch(stop_after: int) -> None:
    result = Probe("gls", {"smooth_rate": -6.0, "warmup": 2}).resume(stop_after=stop_after)
    assert result.ok, result.detail


def test_two_stage_under_phases_trains_and_resumes_exactly() -> None:
    phases = [{"epochs": 2, "momentum": 0.0, "weight_decay": 0.0, "schedule": "step", "milestones": [1]},
              {"epochs": 2, "lr": 1e-6, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4,
               "schedule": "constant", "milestones": []}]
    probe = Probe("gls", {"smooth_rate": -6.0, "warmup": 2}, train={"epochs": 4, "phases": phases})
    history = probe.straight().out["history"]
    assert [row["lr"] for row in history] == pytest.approx([0.05, 0.005, 1e-6, 1e-6])
    assert "warmup_best_epoch" in history[2] and all(math.isfinite(r["train_loss"]) for r in history)
    result = probe.resume(stop_after=2)
    assert result.ok, result.detail
