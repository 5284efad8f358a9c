"""SELC: the official formulas (targets, loss, gradients; scale-100 logits and absent classes), the code shared with
ALR, the per-setting ``es``/``alpha``, the paper recipes through the planner, and exact resume of the soft labels."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from noisybench.config import Grid
from noisybench.conformance import Probe, probe_run
from noisybench.errors import ConfigError
from noisybench.methods import alr, selc
from noisybench.plan import expand_grid, render_plan
from noisybench.trainer import Trainer
from tests.methods._helpers import FixedLogits, batch, fake_context, setting
from tests.methods._loss_refs import F32, F64, assert_reference, inputs, ref_selc

CASES = [(0, 3.0, ()), (1, 3.0, (0, 3, 6)), (2, 100.0, ()), (3, 100.0, (9,))]  # scale 100; absent classes
C = 10


def _soft_rows(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Soft labels as after some SELC epochs: one-hot moved towards random predictions (rows sum to 1)."""
    g = torch.Generator().manual_seed(100 + seed)
    probs = torch.softmax(torch.randn(len(labels), C, generator=g, dtype=torch.float64) * 2, dim=1)
    return 0.6 * F.one_hot(labels, C).double() + 0.4 * probs


@pytest.mark.parametrize(("seed", "scale", "absent"), CASES)
@pytest.mark.parametrize("momentum", [0.9, 0.8, 0.0, 1.0])
@pytest.mark.parametrize("start", ["one-hot", "soft"])
def test_targets_loss_and_gradient_equal_the_official_formula(seed: int, scale: float, absent: tuple, momentum: float,
                                                              start: str) -> None:
    logits, labels = inputs(seed, scale, absent)
    rows = F.one_hot(labels, C).double() if start == "one-hot" else _soft_rows(labels, seed)

    def ours(z: torch.Tensor) -> torch.Tensor:
        return selc.selc_loss(z, selc.selc_update_targets(rows.to(z.dtype), torch.softmax(z, dim=1), momentum))

    assert_reference(ours, lambda z: ref_selc(z, rows, momentum)[0], logits)
    moved = selc.selc_update_targets(rows, torch.softmax(logits, dim=1), momentum)
    torch.testing.assert_close(moved, ref_selc(logits, rows, momentum)[1], **F64)
    moved32 = selc.selc_update_targets(rows.float(), torch.softmax(logits.float(), dim=1), momentum)
    torch.testing.assert_close(moved32.double(), moved, **F32)
    torch.testing.assert_close(moved.sum(dim=1), torch.ones(len(labels), dtype=torch.float64), **F64)
    if absent:
        assert not bool(torch.isin(labels, torch.tensor(absent)).any())  # the edge case is real


def test_the_official_log_of_softmax_is_nan_where_ours_is_finite() -> None:
    """Deviation 1: float32 logits with a gap of 400: softmax underflows to 0 for the last class, whose soft label is
    0, and log(0) * 0 = NaN; the log-softmax gives the float64 value."""
    logits = torch.tensor([[0.0, 200.0, -200.0], [5.0, 0.0, 1.0]])
    rows = F.one_hot(torch.tensor([0, 0]), 3).float()
    ref_loss, _ = ref_selc(logits, rows, 0.9)
    assert math.isnan(float(ref_loss))
    z = logits.clone().requires_grad_(True)
    loss = selc.selc_loss(z, selc.selc_update_targets(rows, torch.softmax(z, dim=1), 0.9))
    loss.backward()
    loss = loss.detach()
    z64 = logits.double()
    expected = selc.selc_loss(z64, selc.selc_update_targets(rows.double(), torch.softmax(z64, dim=1), 0.9))
    assert math.isfinite(float(loss)) and torch.isfinite(z.grad).all()
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_alr_shares_the_numerics() -> None:
    """ALR builds on SELC: the same target update (one function) and, at lambda_H = 0, the same loss, bit for bit."""
    assert alr.alr_update_targets is selc.selc_update_targets
    assert selc.REFERENCE_FUNCTIONS == (selc.selc_loss, selc.selc_update_targets)
    logits, labels = inputs(4)
    rows = _soft_rows(labels, 4)
    for dtype in (torch.float64, torch.float32):
        z1 = logits.to(dtype).clone().requires_grad_(True)
        z2 = logits.to(dtype).clone().requires_grad_(True)
        a, b = selc.selc_loss(z1, rows.to(dtype)), alr.alr_loss(z2, rows.to(dtype), 0.0)
        a.backward()
        b.backward()
        assert torch.equal(a, b) and torch.equal(z1.grad, z2.grad)


def _stepped(hp: dict, epoch: int, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple:
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 1])
    method = selc.SELC(**{**selc.SELC.hparams, **hp})
    ctx = fake_context(labels, 3, FixedLogits(logits))
    method.setup(ctx)
    before = method.targets.clone()
    index = torch.tensor([0, 2])
    loss = method.training_step(ctx, batch(index.float(), labels[index], index), epoch)
    return method, before, loss.detach(), logits, labels


def test_training_step_is_ce_before_es_then_the_reference_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    method, before, loss, logits, labels = _stepped({"es": 2}, epoch=1)
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits[[0, 2]], labels[[0, 2]])), abs=1e-7)
    assert torch.equal(method.targets, before) and torch.equal(before, F.one_hot(labels, 3).float())
    calls = []
    for name in ("selc_loss", "selc_update_targets"):
        original = getattr(selc, name)
        monkeypatch.setattr(selc, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    method, before, loss, logits, labels = _stepped({"es": 2, "alpha": 0.7}, epoch=2)
    assert calls == ["selc_update_targets", "selc_loss"]
    ref_loss, moved = ref_selc(logits[[0, 2]], F.one_hot(labels[[0, 2]], 3).float(), 0.7)
    torch.testing.assert_close(method.targets[[0, 2]], moved)
    torch.testing.assert_close(loss, ref_loss)
    assert torch.equal(method.targets[[1, 3]], before[[1, 3]])  # rows outside the batch untouched
    assert method.refined_targets() is method.targets


def _hp(**kw) -> dict:  # noqa: ANN003
    return {k: (v.value, v.source) for k, v in selc.SELC.default_hparams(setting(**kw)).items()}


@pytest.mark.parametrize(("dataset", "family", "rate", "classes", "expected"), [
    ("cifar10", "sym-dividemix", 0.2, 10, 40), ("cifar10", "sym", 0.4, 10, 30), ("cifar10", "sym", 0.6, 10, 30),
    ("cifar10", "sym", 0.8, 10, 40), ("cifar10", "asym-dividemix", 0.4, 10, 40), ("cifar100", "sym", 0.2, 100, 30),
    ("cifar100", "sym-dividemix", 0.4, 100, 20), ("cifar100", "sym", 0.6, 100, 30), ("cifar100", "sym", 0.8, 100, 40),
    ("cifar100", "asym", 0.4, 100, 20),
])
def test_es_is_the_official_table_on_the_paper_schedule(dataset: str, family: str, rate: float, classes: int,
                                                       expected: int) -> None:
    hp = _hp(dataset=dataset, family=family, rate=rate, num_classes=classes, epochs=200, paper_epochs=200)
    assert hp["es"] == (expected, "paper") and hp["alpha"] == (0.9, "paper-default")


def test_es_off_the_table_or_off_the_paper_schedule_is_suite() -> None:
    assert _hp(dataset="cifar10", family="sym", rate=0.5, num_classes=10, epochs=200)["es"] == (30, "suite")
    assert _hp(dataset="cifar10", family="pairflip", rate=0.45, num_classes=10, epochs=200)["es"] == (40, "suite")
    shared = _hp(dataset="cifar10", family="sym", rate=0.2, num_classes=10, epochs=120, protocol="shared")
    assert shared["es"] == (24, "suite")  # 40 of 200 epochs, scaled
    for dataset, epochs, es in (("digits", 40, 8), ("mnist1d", 30, 6), ("cifar10n", 100, 20)):
        hp = _hp(dataset=dataset, family="sym", rate=0.5, num_classes=10, epochs=epochs, protocol="shared")
        assert hp == {"es": (es, "suite"), "alpha": (0.9, "suite")}


@pytest.mark.parametrize(("dataset", "epochs", "es", "alpha"),
                         [("animal10n", 100, 41, 0.9), ("clothing1m", 40, 5, 0.8), ("webvision", 100, 40, 0.9)])
def test_real_world_values(dataset: str, epochs: int, es: int, alpha: float) -> None:
    hp = _hp(dataset=dataset, family="none", rate=None, num_classes=10, epochs=epochs, paper_schedule=True)
    assert hp["es"] == (es, "paper") and hp["alpha"] == (pytest.approx(alpha), "paper-default")
    shorter = _hp(dataset=dataset, family="none", rate=None, num_classes=10, epochs=epochs // 2, paper_epochs=epochs,
                  paper_schedule=False)
    assert shorter["es"] == (max(1, round(es / 2)), "suite")


def _plan(datasets: list[str], noise: list[str]) -> list[dict]:
    grid = Grid(name="selc", datasets=datasets, methods=["selc"], noise=noise, seeds=[1],
                train={"protocol": "paper"}, source="selc.toml")
    return json.loads(render_plan(expand_grid(grid), "json"))["configurations"]


def test_plan_on_cifar_grids_shows_the_paper_recipe() -> None:
    configs = _plan(["cifar10", "cifar100"], ["sym-dividemix:0.4", "asym-dividemix:0.4", "sym:0.8"])
    assert len(configs) == 6
    expected = {"arch": "resnet34", "epochs": 200, "optimizer": "sgd", "lr": 0.02, "momentum": 0.9,
                "nesterov": False, "weight_decay": 1e-3, "schedule": "step", "milestones": [40, 80], "gamma": 0.1,
                "batch_size": 128, "augment": True, "val_fraction": 0.0}
    for config in configs:
        recipe = config["recipe"]
        assert {k: recipe[k]["value"] for k in expected} == expected
        assert {recipe[k]["source"] for k in expected} == {"paper"}
        assert all(recipe[k]["ref"].startswith("MacLLL/SELC@69bcf1e") for k in expected)
    runs = expand_grid(Grid(name="selc", datasets=["cifar10", "cifar100"], methods=["selc"],
                            noise=["sym-dividemix:0.4", "asym-dividemix:0.4"], seeds=[1], train={"protocol": "paper"}))
    assert {(r.dataset.name, r.noise): (r.hparams["es"], r.hparam_sources["es"]) for r in runs} == {
        ("cifar10", "sym-dividemix:0.4"): (30, "paper"), ("cifar10", "asym-dividemix:0.4"): (40, "paper"),
        ("cifar100", "sym-dividemix:0.4"): (20, "paper"), ("cifar100", "asym-dividemix:0.4"): (20, "paper")}


def test_real_world_recipes_through_the_planner() -> None:
    runs = {r.dataset.name: r for r in expand_grid(Grid(
        name="selc", datasets=["animal10n", "clothing1m", "webvision"], methods=["selc"], noise=["none"], seeds=[1],
        train={"protocol": "paper"}))}
    animal, clothing, web = runs["animal10n"], runs["clothing1m"], runs["webvision"]
    assert (animal.train.arch, animal.train.momentum, animal.train.lr, animal.train.milestones, animal.train.gamma) == \
        ("vgg19_bn", 0.0, 0.1, [50, 75], 0.2)
    assert (animal.hparams["es"], animal.hparam_sources["es"]) == (41, "paper")
    assert (clothing.train.epochs, clothing.train.lr, clothing.train.milestones, clothing.train.batch_size) == \
        (40, 0.01, [10, 20], 64)
    assert "pretrained" in clothing.train.arch_kwargs  # the dataset's pretrained ResNet-50 is kept
    assert (clothing.hparams["es"], clothing.hparams["alpha"]) == (5, 0.8)
    assert (web.train.arch, web.train.lr, web.train.milestones, web.hparams["es"]) == \
        ("inception_resnet_v2", 0.01, [40, 80], 40)
    assert {r.train.val_fraction for r in runs.values()} == {0.0}
    assert {r.train_sources["lr"] for r in runs.values()} == {"paper"}


@pytest.mark.parametrize(("bad", "match"), [({"es": -1}, "es"), ({"es": 2.5}, "es"), ({"es": True}, "es"),
                                            ({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha")])
def test_check_hparams_refuses(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        selc.SELC.check_hparams({**selc.SELC.hparams, **bad})


def test_search_space_spans_the_official_values() -> None:
    space = selc.SELC.search_space(setting("cifar10", "sym", 0.4, 10, 200))
    assert (space["es"].low, space["es"].high) == (20, 80) and space["alpha"].low <= 0.8 < 0.9 <= space["alpha"].high


def test_es_beyond_the_run_is_ce_and_the_targets_are_scored() -> None:
    ce = Trainer(probe_run("ce")).run()
    same = Trainer(probe_run("selc", {"es": 3})).run()
    assert [h["train_loss"] for h in same["history"]] == [h["train_loss"] for h in ce["history"]]
    out = Trainer(probe_run("selc", {"es": 1})).run()
    assert all("refined_acc" in h and math.isfinite(h["train_loss"]) for h in out["history"])


@pytest.mark.parametrize("stop_after", [1, 2])
def test_resume_restores_the_soft_labels_exactly(stop_after: int) -> None:
    probe = Probe("selc", {"es": 1, "alpha": 0.7})
    targets = probe.straight().states[2]["targets"]
    assert not torch.equal(targets, F.one_hot(targets.argmax(dim=1), targets.shape[1]).float())  # they moved
    result = probe.resume(stop_after=stop_after)
    assert result.ok, result.detail
