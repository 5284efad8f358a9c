"""ELR loss and targets against the spec's hand-computed golden example (methods.md §5.1)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from noisybench.methods.elr import ELR, elr_loss, elr_update_targets
from noisybench.trainer import belief_stats
from tests.methods._helpers import FixedLogits, Z, batch, fake_context, setting


def test_golden_example() -> None:
    p = F.softmax(Z, dim=1)
    assert p[0].tolist() == pytest.approx([0.785597, 0.175290, 0.039113], abs=1e-6)
    t = elr_update_targets(torch.zeros(1, 3), p, beta=0.7)
    assert t[0].tolist() == pytest.approx([0.235679, 0.052587, 0.011734], abs=1e-6)
    label = torch.tensor([0])
    assert float(elr_loss(Z, label, t, lam=0.0)) == pytest.approx(0.241311, abs=1e-6)  # CE alone
    assert float(elr_loss(Z, label, t, lam=1.0)) - 0.241311 == pytest.approx(-0.216697, abs=1e-6)  # + reg
    assert float(elr_loss(Z, label, t, lam=3.0)) == pytest.approx(-0.408778, abs=2e-6)


def test_regulariser_gradient_matches_formula() -> None:
    # d/dz_k log(1 - s) = -p_k (t_k - s) / (1 - s), s = <t, p> (clamp inactive here)
    z = Z.clone().requires_grad_(True)
    t = torch.tensor([[0.5, 0.3, 0.2]])
    reg = elr_loss(z, torch.tensor([0]), t, lam=1.0) - F.cross_entropy(z, torch.tensor([0]))
    reg.backward()
    p = F.softmax(Z, dim=1)[0]
    s = float((t[0] * p).sum())
    expected = [-float(p[k]) * (float(t[0, k]) - s) / (1 - s) for k in range(3)]
    assert z.grad[0].tolist() == pytest.approx(expected, abs=1e-6)


def test_targets_are_clamped_and_renormalised() -> None:
    p = torch.tensor([[1.0, 0.0, 0.0]])  # clamp -> (1 - 1e-4, 1e-4, 1e-4), renormalised by 1 + 1e-4
    t = elr_update_targets(torch.zeros(1, 3), p, beta=0.0)
    assert t[0].tolist() == pytest.approx([0.9999 / 1.0001, 1e-4 / 1.0001, 1e-4 / 1.0001], rel=1e-5)


def test_training_step_updates_only_batch_rows_before_the_loss() -> None:
    labels = torch.tensor([0, 1, 2, 0])
    net = FixedLogits(Z.repeat(4, 1))
    method = ELR(beta=0.7, lam=3.0)
    ctx = fake_context(labels, 3, net)
    method.setup(ctx)
    assert torch.equal(method.targets, torch.zeros(4, 3))  # starts at zero, not at the labels
    loss = method.training_step(ctx, batch(torch.tensor([0.0, 2.0]), labels[[0, 2]], torch.tensor([0, 2])), 0)
    assert method.targets[0].tolist() == pytest.approx([0.235679, 0.052587, 0.011734], abs=1e-6)
    assert torch.equal(method.targets[1], torch.zeros(3)) and torch.equal(method.targets[3], torch.zeros(3))
    # label 0 -> -0.408778; label 2: CE = -log 0.039113 = 3.241311, same regulariser
    assert float(loss.detach()) == pytest.approx((-0.408778 + 3.241311 - 0.650091) / 2, abs=2e-6)


def test_trainer_scores_the_refined_targets_against_clean_labels() -> None:
    clean = torch.tensor([0, 1, 2, 0])
    noisy = torch.tensor([0, 1, 0, 1])  # samples 2 and 3 are wrong
    method = ELR()
    ctx = fake_context(noisy, 3, FixedLogits(Z.repeat(4, 1)))
    method.setup(ctx)
    method.targets = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.2, 0.1], [0.1, 0.1, 0.3], [0.5, 0.6, 0.0]])
    assert method.end_epoch(ctx, 0) == {}  # the method reports beliefs, not scores
    assert belief_stats(method, noisy, clean) == {"refined_acc": 0.75, "refined_acc_noisy": 0.5}
    assert belief_stats(method, noisy, None) == {}  # real-noise datasets: nothing to score against


@pytest.mark.parametrize(("dataset", "family", "expected"), [
    ("cifar10", "sym", (0.7, 3.0, "paper")),
    ("cifar10", "asym", (0.9, 1.0, "paper")),
    ("cifar100", "sym", (0.9, 7.0, "paper")),
    ("cifar100", "human", (0.9, 7.0, "suite")),
    ("cifar100n", "human", (0.9, 7.0, "suite")),
    ("cifar10n", "human", (0.7, 3.0, "suite")),
    ("digits", "asym", (0.9, 1.0, "suite")),
    ("mnist1d", "sym", (0.7, 3.0, "suite")),
])
def test_hyperparameters_per_setting(dataset: str, family: str, expected: tuple) -> None:
    hp = ELR.default_hparams(setting(dataset, family, 0.4, 10, 120))
    assert (hp["beta"].value, hp["lam"].value, hp["beta"].source) == expected
    assert hp["lam"].source == expected[2]


def test_pairflip_values_are_not_tagged_paper() -> None:
    from noisybench.methods.elr import ELR
    from tests.methods._helpers import setting

    asym = ELR.default_hparams(setting("cifar10", "asym", 0.4, 10, 120))
    pair = ELR.default_hparams(setting("cifar10", "pairflip", 0.45, 10, 120))
    assert (asym["beta"].value, asym["lam"].value, asym["lam"].source) == (0.9, 1.0, "paper")
    assert (pair["beta"].value, pair["lam"].value, pair["lam"].source) == (0.9, 1.0, "suite")


SCHEDULE_KEYS = ("epochs", "schedule", "milestones", "gamma")
OPTIMISER_KEYS = ("arch", "optimizer", "lr", "momentum", "nesterov", "weight_decay", "batch_size", "augment")


def _elr_plan(noise: str, **train: object) -> dict:
    import json

    from noisybench.config import Grid
    from noisybench.plan import expand_grid, render_plan

    grid = Grid(name="elr", datasets=["cifar10"], methods=["elr"], noise=[noise], seeds=[1],
                train={"protocol": "paper", **train}, source="elr.toml")
    return json.loads(render_plan(expand_grid(grid), "json"))["configurations"][0]["recipe"]


def test_cifar10_schedule_source_is_the_paper_for_symmetric_noise_and_the_config_for_asymmetric() -> None:
    sym, asym = _elr_plan("sym-dividemix:0.5"), _elr_plan("asym:0.4")
    expected = {"epochs": 120, "schedule": "step", "milestones": [40, 80], "gamma": 0.01}
    for recipe in (sym, asym):
        assert {k: recipe[k]["value"] for k in SCHEDULE_KEYS} == expected
        assert all(recipe[k]["source"] == "paper" for k in (*SCHEDULE_KEYS, *OPTIMISER_KEYS))
    for key in SCHEDULE_KEYS:
        assert sym[key]["ref"].startswith("ELR paper text") and "symmetric-noise config: 150 epochs" in sym[key]["ref"]
        assert asym[key]["ref"] == "shengliu66/ELR@934af53 official CIFAR-10 config for asymmetric noise"
    for key in OPTIMISER_KEYS:
        assert sym[key]["ref"] == "shengliu66/ELR@934af53 official CIFAR-10 config (symmetric noise)"
        assert asym[key]["ref"] == "shengliu66/ELR@934af53 official CIFAR-10 config for asymmetric noise"


def test_the_shipped_symmetric_config_is_reachable_as_an_explicit_variant(capsys) -> None:
    shipped = _elr_plan("sym-dividemix:0.5", epochs=150, schedule="cosine-restarts", restart_every=10, eta_min=0.001)
    assert {k: shipped[k]["value"] for k in ("epochs", "schedule", "restart_every", "eta_min")} == \
        {"epochs": 150, "schedule": "cosine-restarts", "restart_every": 10, "eta_min": 0.001}
    assert {shipped[k]["source"] for k in ("epochs", "schedule", "restart_every", "eta_min")} == {"user"}
    assert shipped["lr"]["ref"] == "shengliu66/ELR@934af53 official CIFAR-10 config (symmetric noise)"


def test_plan_shows_each_values_reference(tmp_path, capsys) -> None:
    from noisybench.cli import main

    grid = tmp_path / "elr.toml"
    grid.write_text('[grid]\ndatasets = ["cifar10"]\nmethods = ["elr"]\nnoise = ["sym-dividemix:0.5", "asym:0.4"]\n'
                    'seeds = [1]\n[train]\nprotocol = "paper"\n')
    assert main(["plan", str(grid)]) == 0
    out = capsys.readouterr().out
    sym, asym = out.split("== cifar10 | asym:0.4")
    milestones = [line for line in sym.splitlines() if line.startswith("recipe  milestones")][0]
    assert "paper" in milestones and "ELR paper text" in milestones
    milestones = [line for line in asym.splitlines() if line.startswith("recipe  milestones")][0]
    assert "config for asymmetric noise" in milestones
