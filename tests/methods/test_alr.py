"""ALR (suite reconstruction, methods.md §7.2): golden example and the spec's sanity properties."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from noisybench.methods.alr import ALR, alr_loss, alr_update_targets, entropy_weight
from noisybench.trainer import Trainer
from tests.methods._helpers import FixedLogits, Z, batch, fake_context, setting, tiny_run


def test_golden_example() -> None:
    t = alr_update_targets(F.one_hot(torch.tensor([0]), 3).float(), F.softmax(Z, dim=1), momentum=0.9)
    assert t[0].tolist() == pytest.approx([0.978560, 0.017529, 0.003911], abs=1e-6)
    assert float(alr_loss(Z, t, 0.0)) == pytest.approx(0.279339, abs=1e-6)
    assert (float(alr_loss(Z, t, 1.0)) - 0.279339) == pytest.approx(0.621585, abs=1e-6)  # H(p)
    assert float(alr_loss(Z, t, 0.1)) == pytest.approx(0.341497, abs=1e-6)


def test_entropy_gradient_matches_formula_and_golden() -> None:
    z = Z.clone().requires_grad_(True)
    t = F.one_hot(torch.tensor([0]), 3).float()
    (alr_loss(z, t, 1.0) - alr_loss(z, t, 0.0)).backward()  # the gradient of H(p) alone
    p = F.softmax(Z, dim=1)[0]
    h = float(-(p * p.log()).sum())
    analytic = [-float(p[k]) * (float(p[k].log()) + h) for k in range(3)]  # dH/dz_k = -p_k (log p_k + H)
    assert z.grad[0].tolist() == pytest.approx(analytic, abs=1e-6)
    assert z.grad[0].tolist() == pytest.approx([-0.298742, 0.196277, 0.102464], abs=1e-6)


def _stepped(hparams: dict, epoch: int = 5, rows: tuple[int, ...] = (0, 2)) -> tuple[ALR, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 1])
    method = ALR(**{**ALR.hparams, "warmup_end": 2, **hparams})
    ctx = fake_context(labels, 3, FixedLogits(logits))
    method.setup(ctx)
    before = method.targets.clone()
    index = torch.tensor(rows)
    loss = method.training_step(ctx, batch(index.float(), labels[index], index), epoch)
    return method, before, loss.detach()


def test_lambda_zero_is_selc_refinement() -> None:
    torch.manual_seed(0)
    logits, labels, m = torch.randn(4, 3), torch.tensor([0, 1, 2, 1]), 0.7
    method, before, loss = _stepped({"momentum": m, "lambda_h": 0.0})
    # SELC semantics, written out: t = m e_y + (1 - m) p for the batch rows, L = -mean sum t log p
    p = F.softmax(logits[[0, 2]], dim=1)
    t = m * F.one_hot(labels[[0, 2]], 3).float() + (1 - m) * p
    assert torch.allclose(method.targets[[0, 2]], t, atol=1e-6)
    assert float(loss) == pytest.approx(float(-(t * p.log()).sum(1).mean()), abs=1e-6)
    assert torch.equal(method.targets[[1, 3]], before[[1, 3]])  # rows outside the batch untouched
    sums = method.targets.sum(1)
    assert bool((method.targets >= 0).all()) and torch.allclose(sums, torch.ones(4), atol=1e-6)


def test_warmup_epochs_use_plain_cross_entropy() -> None:
    method, before, loss = _stepped({"lambda_h": 0.5}, epoch=1)
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits[[0, 2]], torch.tensor([0, 2]))), abs=1e-7)
    assert torch.equal(method.targets, before)  # hard labels during warm-up


def test_threshold_above_one_equals_no_entropy_and_zero_ramp_equals_no_ramp() -> None:
    assert _stepped({"lambda_h": 0.3, "entropy_threshold": 1.01})[2] == _stepped({"lambda_h": 0.0})[2]
    assert _stepped({"lambda_h": 0.3, "entropy_ramp": 0})[2] == _stepped({"lambda_h": 0.3})[2]
    assert _stepped({"lambda_h": 0.3})[2] != _stepped({"lambda_h": 0.0})[2]


def test_entropy_ramp_is_linear_from_warmup_end() -> None:
    assert [entropy_weight(0.2, e, 10, 4) for e in (9, 10, 12, 14, 20)] == pytest.approx([0, 0, 0.1, 0.2, 0.2])
    assert entropy_weight(0.2, 10, 10, 0) == 0.2


def test_targets_variant_sharpens_confident_rows_and_T1_is_noop() -> None:
    plain, _, _ = _stepped({"entropy_on": "pred", "lambda_h": 0.0, "momentum": 0.5})
    same, _, _ = _stepped({"entropy_on": "targets", "sharpen_T": 1.0, "momentum": 0.5})
    assert torch.allclose(plain.targets, same.targets, atol=1e-6)
    sharp, _, _ = _stepped({"entropy_on": "targets", "sharpen_T": 0.5, "momentum": 0.5, "entropy_threshold": 0.6})
    t = plain.targets
    for i in range(4):
        expected = t[i] ** 2 / (t[i] ** 2).sum() if t[i].max() >= 0.6 else t[i]
        assert torch.allclose(sharp.targets[i], expected, atol=1e-6)
    assert not torch.allclose(sharp.targets, t)


def _curve(result: dict) -> list[tuple]:
    return [(h["train_loss"], h["val_acc"], h["test_acc"]) for h in result["history"]]


def test_warmup_beyond_the_run_is_ce() -> None:
    ce = Trainer(tiny_run("ce")).run()
    alr = Trainer(tiny_run("alr", {"warmup_end": 3, "lambda_h": 0.4})).run()
    assert _curve(alr) == _curve(ce)


def test_momentum_one_without_entropy_is_ce() -> None:
    ce = Trainer(tiny_run("ce")).run()
    alr = Trainer(tiny_run("alr", {"warmup_end": 0, "momentum": 1.0, "lambda_h": 0.0})).run()
    for a, b in zip(_curve(alr), _curve(ce)):
        assert a == pytest.approx(b, abs=1e-5)
    assert alr["history"][-1]["refined_acc"] == pytest.approx(1 - alr["noise"]["actual_rate"], abs=0.05)


@pytest.mark.parametrize(("dataset", "rate", "epochs", "warmup"), [
    ("cifar10", 0.2, 200, 40), ("cifar10", 0.4, 200, 30), ("cifar100", 0.4, 200, 20), ("cifar100n", None, 200, 30),
    ("digits", 0.5, 40, 8),
    ("mnist1d", 0.8, 30, 6),
])
def test_warmup_end_per_setting(dataset: str, rate: float | None, epochs: int, warmup: int) -> None:
    hp = ALR.default_hparams(setting(dataset, "sym", rate, 10, epochs))
    assert hp["warmup_end"].value == warmup and hp["warmup_end"].source == "suite"
    assert {h.source for h in hp.values()} == {"suite"}  # everything about ALR is our reconstruction


@pytest.mark.parametrize(("key", "value"), [("momentum", 1.5), ("entropy_on", "logits"), ("ema_granularity", "step"),
                                            ("warmup_end", 2.5)])
def test_bad_hyperparameters_name_the_key(key: str, value: object) -> None:
    from noisybench.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        ALR.resolve_hparams(setting("digits", "sym", 0.5, 10, 40), {key: value})
