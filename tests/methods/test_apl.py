"""APL (NCE+RCE): the official formulas (values, gradients, float32), RCE's constant, the clamp, the method's
hyperparameters and paper recipes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from noisybench.config import Grid
from noisybench.errors import ConfigError
from noisybench.facts import CIFAR_10, CIFAR_100, NoiseKind
from noisybench.method import RecipeQuery
from noisybench.methods import apl
from noisybench.methods._robust import rce_constant, reverse_cross_entropy
from noisybench.plan import expand_grid
from noisybench.search_space import space_size
from tests.methods._helpers import batch, fake_context, setting
from tests.methods._loss_refs import assert_reference, inputs, ref_nce, ref_rce

CASES = [(0, 3.0, ()), (1, 3.0, (2, 5, 7)), (2, 100.0, ()), (3, 100.0, (0, 9))]  # scale 100; absent classes


@pytest.mark.parametrize(("seed", "scale", "absent"), CASES)
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 1.0), (10.0, 0.1)])
def test_nce_rce_and_their_sum_equal_the_official_formulas(seed: int, scale: float, absent: tuple[int, ...],
                                                           alpha: float, beta: float) -> None:
    logits, labels = inputs(seed, scale, absent)
    assert_reference(lambda z: apl.nce_loss(z, labels, alpha), lambda z: ref_nce(z, labels, alpha), logits)
    assert_reference(lambda z: apl.rce_loss(z, labels, beta), lambda z: ref_rce(z, labels, beta), logits)
    assert_reference(lambda z: apl.nce_rce_loss(z, labels, alpha, beta),
                     lambda z: ref_nce(z, labels, alpha) + ref_rce(z, labels, beta), logits)
    assert math.isfinite(float(apl.nce_rce_loss(logits.float(), labels, alpha, beta)))


def test_rce_constant_is_the_codes_minus_log_1e_minus_4_not_the_papers_4() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.25, 0.5, 0.25]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    rce = reverse_cross_entropy(probs.log(), labels)
    torch.testing.assert_close(rce, -math.log(1e-4) * (1 - probs[[0, 1], [0, 1]]), rtol=1e-14, atol=0)
    assert not torch.allclose(rce, 4.0 * (1 - probs[[0, 1], [0, 1]]))
    assert rce_constant(torch.float64) == -math.log(1e-4)
    assert rce_constant(torch.float32) == float(-torch.log(torch.tensor(1e-4, dtype=torch.float32)))


def test_the_official_float32_one_hot_differs_from_the_float64_constant_by_about_1e_8() -> None:
    """The documented deviation: the unpatched official code builds its one-hot in float32 for float64 logits."""
    logits, labels = inputs(4)
    one_hot32 = torch.clamp(F.one_hot(labels, logits.shape[1]).float(), min=1e-4, max=1.0)
    p = torch.clamp(F.softmax(logits, dim=1), min=1e-7, max=1.0)
    official = (-1 * torch.sum(p * torch.log(one_hot32), dim=1)).mean()
    ours = apl.rce_loss(logits, labels)
    assert 1e-9 < abs(float(official / ours) - 1) < 3e-8


def test_rce_gradient_is_blocked_below_the_probability_clamp() -> None:
    logits = torch.tensor([[10.0, 0.0, -30.0, 2.0]], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0])
    apl.rce_loss(logits, labels).backward()
    p = F.softmax(logits.detach(), dim=1)[0]
    assert p[2] < 1e-7 < p[1]
    kept = [k for k in range(4) if k != 0 and p[k] >= 1e-7]  # the clamp passes no gradient for p_2
    analytic = torch.stack([sum(p[k] * (float(k == j) - p[j]) for k in kept) for j in range(4)]) * -math.log(1e-4)
    torch.testing.assert_close(logits.grad[0], analytic, rtol=1e-12, atol=1e-15)
    assert float(logits.grad[0, 2]) != 0.0  # p_2 still moves through the softmax of the kept terms


def test_nce_of_a_known_prediction() -> None:
    p = torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64)
    expected = math.log(0.7) / (math.log(0.7) + math.log(0.2) + math.log(0.1))
    assert float(apl.nce_loss(p.log(), torch.tensor([0]))) == pytest.approx(expected, rel=1e-14)
    assert float(apl.nce_loss(p.log(), torch.tensor([0]), alpha=10.0)) == pytest.approx(10 * expected, rel=1e-14)


def test_reference_functions_are_the_documented_entry_points() -> None:
    assert apl.REFERENCE_FUNCTIONS == (apl.nce_loss, apl.rce_loss, apl.nce_rce_loss)


def test_training_step_calls_nce_rce_loss_with_the_hyperparameters(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    original = apl.nce_rce_loss

    def spy(logits, labels, alpha, beta):  # noqa: ANN001, ANN202
        calls.append((alpha, beta))
        return original(logits, labels, alpha, beta)

    monkeypatch.setattr(apl, "nce_rce_loss", spy)
    net = torch.nn.Linear(4, 3)
    method = apl.APL(alpha=10.0, beta=0.1)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    loss = method.training_step(fake_context(y, 3, net), batch(x, y, torch.arange(5)), 0)
    assert calls == [(10.0, 0.1)]
    torch.testing.assert_close(loss, original(net(x), y, 10.0, 0.1))


def test_default_hparams_follow_the_official_configs() -> None:
    c10 = apl.APL.default_hparams(setting("cifar10", "sym", 0.4, 10, 120))
    assert (c10["alpha"].value, c10["beta"].value, c10["alpha"].source) == (1.0, 1.0, "paper")
    c100 = apl.APL.default_hparams(setting("cifar100", "asym", 0.4, 100, 200))
    assert (c100["alpha"].value, c100["beta"].value, c100["beta"].source) == (10.0, 0.1, "paper")
    other = apl.APL.default_hparams(setting("mnist1d", "sym", 0.5, 10, 30, protocol="shared"))
    assert (other["alpha"].value, other["beta"].value, other["alpha"].source) == (1.0, 1.0, "suite")
    c100n = apl.APL.default_hparams(setting("cifar100n", "human", None, 100, 100, noise_arg="noisy"))
    assert (c100n["alpha"].value, c100n["alpha"].source) == (10.0, "suite")


@pytest.mark.parametrize(("bad", "match"), [({"alpha": -1.0}, "alpha"), ({"alpha": 0.0, "beta": 0.0}, "both 0"),
                                            ({"loss": "nce+mae"}, "loss")])
def test_check_hparams_refuses(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apl.APL.check_hparams({**apl.APL.hparams, **bad})


def test_search_space_points_pass_the_checks() -> None:
    space = apl.APL.search_space(setting("cifar10", "sym", 0.4, 10, 120))
    assert space_size(space) == math.inf
    for u in (0.0, 0.3, 1.0):
        apl.APL.check_hparams({**apl.APL.hparams, **{k: d.value_at(u) for k, d in space.items()}})


def test_plan_shows_the_official_recipes_tagged_paper() -> None:
    runs = expand_grid(Grid(name="p", datasets=["cifar10", "cifar100"], methods=["apl"], noise=["sym:0.4"],
                            seeds=[1], train={"protocol": "paper"}))
    by_family = {r.dataset.name: r for r in runs}
    c10, c100 = by_family["cifar10"], by_family["cifar100"]
    assert (c10.train.arch, c10.train.arch_kwargs, c10.train.epochs, c10.train.lr, c10.train.weight_decay) == \
        ("cnn8", {"init": "apl"}, 120, 0.01, 1e-4)
    assert (c100.train.arch, c100.train.epochs, c100.train.lr, c100.train.weight_decay, c100.train.augment) == \
        ("cifar_resnet50", 200, 0.1, 1e-5, "weak+rot20")
    for run in runs:
        assert run.train.grad_clip_norm == 5.0 and run.train.schedule == "cosine" and run.train.eta_min == 0.0
        assert all(run.train_sources[k] == "paper" for k in apl.C10_RECIPE)
        assert "Active-Passive-Losses@04bce53" in run.train_refs["grad_clip_norm"]
    assert apl.APL.paper_recipe(RecipeQuery(CIFAR_100, noise_kind=NoiseKind.CLASS_CONDITIONAL)) is apl.C100_RECIPE
    assert set(apl.APL.paper_recipes) == {CIFAR_10, CIFAR_100}
