"""SCE: the official loss (values, gradients, float32, its CE and RCE parts), the method's hyperparameters, and the
Keras recipe it emulates (scheduler, per-step decay, L2 on chosen layers)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from noisybench.config import Grid
from noisybench.errors import ConfigError
from noisybench.facts import CIFAR_10, CIFAR_100
from noisybench.methods import apl, sce
from noisybench.optim import build_optimizer
from noisybench.plan import expand_grid
from noisybench.registry import MODELS
from noisybench.schedules import lr_at, step_lr
from tests.methods._helpers import batch, fake_context, setting
from tests.methods._loss_refs import assert_reference, inputs, ref_rce, ref_sce

CASES = [(0, 3.0, ()), (1, 3.0, (1, 4)), (2, 100.0, ()), (3, 100.0, (0, 5, 8))]  # scale 100; absent classes


@pytest.mark.parametrize(("seed", "scale", "absent"), CASES)
@pytest.mark.parametrize(("alpha", "beta"), [(0.1, 1.0), (6.0, 0.1), (1.0, 0.0), (0.0, 1.0)])
def test_sce_loss_equals_the_official_formula(seed: int, scale: float, absent: tuple[int, ...], alpha: float,
                                              beta: float) -> None:
    logits, labels = inputs(seed, scale, absent)
    assert_reference(lambda z: sce.sce_loss(z, labels, alpha, beta), lambda z: ref_sce(z, labels, alpha, beta),
                     logits)
    assert math.isfinite(float(sce.sce_loss(logits.float(), labels, alpha, beta)))


@pytest.mark.parametrize(("seed", "scale"), [(5, 3.0), (6, 100.0)])
def test_the_ce_and_rce_parts_are_plain_ce_and_apls_rce(seed: int, scale: float) -> None:
    logits, labels = inputs(seed, scale)
    torch.testing.assert_close(sce.sce_loss(logits, labels, 1.0, 0.0), F.cross_entropy(logits, labels),
                               rtol=1e-14, atol=0)
    torch.testing.assert_close(sce.sce_loss(logits, labels, 0.0, 1.0), apl.rce_loss(logits, labels), rtol=1e-14,
                               atol=0)
    torch.testing.assert_close(sce.sce_loss(logits, labels, 0.0, 1.0), ref_rce(logits, labels, 1.0), rtol=1e-10,
                               atol=1e-12)


def test_reference_functions_and_training_step(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sce.REFERENCE_FUNCTIONS == (sce.sce_loss,)
    calls, original = [], sce.sce_loss

    def spy(logits, labels, alpha, beta):  # noqa: ANN001, ANN202
        calls.append((alpha, beta))
        return original(logits, labels, alpha, beta)

    monkeypatch.setattr(sce, "sce_loss", spy)
    net = torch.nn.Linear(4, 3)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 2, 1, 0])
    loss = sce.SCE(alpha=6.0, beta=0.1).training_step(fake_context(y, 3, net), batch(x, y, torch.arange(6)), 0)
    assert calls == [(6.0, 0.1)]
    torch.testing.assert_close(loss, original(net(x), y, 6.0, 0.1))


def test_default_hparams_are_the_keras_commands() -> None:
    c10 = sce.SCE.default_hparams(setting("cifar10", "sym", 0.4, 10, 120))
    assert (c10["alpha"].value, c10["beta"].value, c10["alpha"].source) == (0.1, 1.0, "paper")
    c100 = sce.SCE.default_hparams(setting("cifar100", "sym", 0.4, 100, 150))
    assert (c100["alpha"].value, c100["beta"].value, c100["beta"].source) == (6.0, 0.1, "paper")
    quick = sce.SCE.default_hparams(setting("digits", "asym", 0.4, 10, 40, protocol="shared"))
    assert (quick["alpha"].value, quick["beta"].value, quick["alpha"].source) == (0.1, 1.0, "suite")


@pytest.mark.parametrize("bad", [{"alpha": -0.1}, {"beta": -1.0}, {"alpha": 0.0, "beta": 0.0}])
def test_check_hparams_refuses(bad: dict) -> None:
    with pytest.raises(ConfigError, match=r"\[methods.sce\]"):
        sce.SCE.check_hparams({**sce.SCE.hparams, **bad})
    space = sce.SCE.search_space(setting("cifar10", "sym", 0.4, 10, 120))
    for u in (0.0, 0.5, 1.0):
        sce.SCE.check_hparams({k: d.value_at(u) for k, d in space.items()})


def _keras_lr(family: str, epoch: int) -> float:
    """``get_lr_scheduler`` of the Keras ``util.py`` (Keras passes the 0-based epoch)."""
    if family == CIFAR_10:
        return 0.0001 if epoch > 80 else 0.001 if epoch > 40 else 0.01
    return 0.001 if epoch > 120 else 0.01 if epoch > 80 else 0.1


@pytest.fixture(scope="module")
def paper_runs() -> dict[str, object]:
    runs = expand_grid(Grid(name="p", datasets=["cifar10", "cifar100"], methods=["sce"], noise=["sym:0.4"],
                            seeds=[1], train={"protocol": "paper"}))
    return {r.dataset.name: r for r in runs}


@pytest.mark.parametrize(("dataset", "family", "decay"), [("cifar10", CIFAR_10, 1e-4), ("cifar100", CIFAR_100, 5e-3)])
def test_the_paper_recipe_reproduces_kerass_learning_rate_at_every_step(paper_runs, dataset: str, family: str,
                                                                         decay: float) -> None:
    train = paper_runs[dataset].train
    assert train.lr_decay_per_step == decay and train.val_fraction == 0.0 and train.momentum == 0.9
    assert not train.nesterov and train.weight_decay == 0.0 and train.batch_size == 128
    steps = math.ceil(50_000 / 128)  # Keras: steps_per_epoch = 50000 / 128 -> 391, the last batch of 80
    for epoch in range(train.epochs):
        assert lr_at(train, epoch) == pytest.approx(_keras_lr(family, epoch), rel=1e-12)
        t = epoch * steps + 17  # Keras: lr / (1 + decay * iterations), iterations never reset
        assert step_lr(lr_at(train, epoch), decay, t) == pytest.approx(_keras_lr(family, epoch) / (1 + decay * t),
                                                                       rel=1e-12)
    assert all(paper_runs[dataset].train_sources[k] == "paper" for k in sce.C10_RECIPE)


def test_keras_l2_lands_on_the_official_layers(paper_runs) -> None:
    c10, c100 = paper_runs["cifar10"].train, paper_runs["cifar100"].train
    net = MODELS.get(c10.arch)((3, 32, 32), 10, **c10.arch_kwargs)
    decays = {id(p): g["weight_decay"] for g in build_optimizer(net, c10).param_groups for p in g["params"]}
    l2 = sorted(n for n, p in net.named_parameters() if decays[id(p)] > 0)
    assert l2 == ["fc1.0.bias", "fc1.0.weight"] and {decays[id(net.fc1[0].weight)]} == {0.02}
    net = MODELS.get(c100.arch)((3, 32, 32), 100, **c100.arch_kwargs)
    decays = {id(p): g["weight_decay"] for g in build_optimizer(net, c100).param_groups for p in g["params"]}
    for name, p in net.named_parameters():
        assert decays[id(p)] == (0.02 if p.dim() >= 2 else 0.0), name  # every kernel; no bias, no batch norm
    assert sum(p.dim() >= 2 for p in net.parameters()) == 1 + 2 * 21 + 2 + 1  # 44 layers + 2 projections
    assert (c10.augment, c100.augment) == ("keras-shift", "keras-shift+rot20")
    assert (c10.arch_kwargs, c100.arch) == ({"init": "keras", "bn": "keras"}, "resnet44")


def test_published_numbers_carry_their_metric_noise_convention_and_protocol() -> None:
    from noisybench.reporting.published import load_published

    rows = [r for r in load_published() if r["method"] == "sce"]
    keras = [r for r in rows if r["protocol"] == "paper"]
    assert {(r["dataset"], r["noise_family"], r["noise_rate"], r["metric"]) for r in keras} == {
        ("cifar100", "none", None, "last"), *(("cifar100", "sym", rate, "last") for rate in (0.2, 0.4, 0.6))}
    assert next(r for r in keras if r["noise_rate"] == 0.6)["value"] == 41.47
    reproduction = [r for r in rows if r["protocol"] == "other"]
    assert {r["metric"] for r in reproduction if r["dataset"] == "cifar10"} == {"best"}
    assert all("SCELoss-Reproduce" in r["source"] for r in reproduction)
