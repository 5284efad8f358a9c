"""DivideMix pieces against hand-computed values (methods.md §6.1) and its co-divide behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisybench.methods._common import sharpen
from noisybench.methods.dividemix import (
    DivideMix,
    gmm_clean_probability,
    linear_rampup,
    mixmatch_loss,
    normalize_losses,
)
from noisybench.trainer import Trainer
from tests.methods._helpers import setting, tiny_run


def test_lambda_u_ramp_golden_example() -> None:
    # lambda_u = 25, W = 10, ramp 16 epochs: epoch 10 -> 0, 18 -> 12.5, >= 26 -> 25 (methods.md §6.1 f)
    weights = [25 * linear_rampup(e, 10, 16) for e in (9, 10, 18, 26, 40)]
    assert weights == pytest.approx([0.0, 0.0, 12.5, 25.0, 25.0])
    assert 25 * linear_rampup(10 + 4 / 8, 10, 16) == pytest.approx(25 * 0.5 / 16)  # within-epoch progress


def test_sharpen_hand_values() -> None:
    out = sharpen(torch.tensor([[0.6, 0.4], [0.5, 0.5]]), 0.5)
    assert out.tolist()[0] == pytest.approx([0.36 / 0.52, 0.16 / 0.52])
    assert out.tolist()[1] == pytest.approx([0.5, 0.5])


def test_mixmatch_loss_hand_values() -> None:
    # every row predicts p = (0.8, 0.2); two labelled rows with target (1, 0), two unlabelled with (0, 1)
    logits = torch.log(torch.tensor([[0.8, 0.2]])).repeat(4, 1)
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    loss_x, loss_u, loss_reg = mixmatch_loss(logits, targets, num_labelled=2)
    assert float(loss_x) == pytest.approx(-math.log(0.8), abs=1e-6)
    assert float(loss_u) == pytest.approx((0.8**2 + 0.8**2) / 2, abs=1e-6)  # mean over rows and classes
    assert float(loss_reg) == pytest.approx(0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2), abs=1e-6)
    _, _, uniform_reg = mixmatch_loss(torch.zeros(4, 2), targets, 2)
    assert float(uniform_reg) == pytest.approx(0.0, abs=1e-7)


def test_normalize_losses() -> None:
    assert normalize_losses(torch.tensor([1.0, 3.0, 5.0])).tolist() == [0.0, 0.5, 1.0]
    assert normalize_losses(torch.tensor([2.0, 2.0])).tolist() == [0.0, 0.0]


def test_gmm_gives_low_loss_samples_high_clean_probability() -> None:
    rng = np.random.default_rng(0)
    losses = np.concatenate([rng.normal(0.1, 0.03, 200), rng.normal(0.8, 0.05, 100)])
    prob = gmm_clean_probability(losses, random_state=0)
    assert prob.shape == (300,)
    assert (prob[:200] > 0.99).all() and (prob[200:] < 0.01).all()
    assert np.array_equal(prob, gmm_clean_probability(losses, random_state=0))


def test_hyperparameters_per_setting() -> None:
    c10 = DivideMix.default_hparams(setting("cifar10", "sym", 0.9, 10, 300))
    assert (c10["lambda_u"].value, c10["lambda_u"].source) == (50.0, "paper")
    assert (c10["p_threshold"].value, c10["loss_history"].value, c10["warmup"].value) == (0.6, 5, 10)
    assert c10["warmup"].source == "paper" and c10["conf_penalty"].value is False
    c100 = DivideMix.default_hparams(setting("cifar100", "sym-dividemix", 0.5, 100, 300))
    assert (c100["lambda_u"].value, c100["warmup"].value, c100["p_threshold"].value) == (150.0, 30, 0.5)
    asym = DivideMix.default_hparams(setting("cifar10", "asym", 0.4, 10, 300))
    assert asym["conf_penalty"].value is True and asym["lambda_u"].value == 0.0
    small = DivideMix.default_hparams(setting("digits", "sym", 0.5, 10, 40))
    assert (small["warmup"].value, small["rampup"].value) == (10, 4)  # scaled with the run's epochs
    assert {small[k].source for k in ("warmup", "rampup", "lambda_u", "batch_size")} == {"suite"}


def test_training_divides_and_co_trains() -> None:
    out = Trainer(tiny_run("dividemix", epochs=4, noise="sym:0.4")).run()
    warm, later = out["history"][0], out["history"][-1]
    assert warm["selected_frac"] == 1.0  # warm-up trains on everything
    assert 0.2 < later["selected_frac"] < 0.95
    # the clean subset is much purer than the data (60 % clean labels)
    assert later["select_precision"] > 0.8 and later["select_recall"] > 0.5
    assert {"loss_x", "loss_u", "lambda_u_eff"} <= set(later)


def test_prediction_sums_both_networks() -> None:
    trainer = Trainer(tiny_run("dividemix", epochs=1))
    ctx, method = trainer.setup()
    x = ctx.prepare(ctx.data.x_test[:5])
    with ctx.eval_mode():
        assert torch.allclose(method.predict(ctx, x), ctx.nets[0](x) + ctx.nets[1](x))
        assert not torch.allclose(ctx.nets[0](x), ctx.nets[1](x))  # two distinct networks


def test_co_divide_threshold_and_fallbacks() -> None:
    method = DivideMix(**{**DivideMix.hparams, "p_threshold": 0.5})
    ctx = type("Ctx", (), {"num_train": 5})()
    pool = torch.arange(5)
    x, u = method._split(ctx, pool, torch.tensor([0.9, 0.2, 0.6, 0.5, 0.1]))
    assert x.tolist() == [0, 2] and u.tolist() == [1, 3, 4]  # strictly above the threshold
    x, u = method._split(ctx, pool, torch.tensor([0.1, 0.4, 0.2, 0.3, 0.0]))  # nobody passes: the top two
    assert sorted(x.tolist()) == [1, 3] and u.tolist() == [0, 2, 4]
    x, u = method._split(ctx, pool, torch.tensor([0.9, 0.8, 0.7, 0.6, 0.1]))  # one unlabelled: U = everyone
    assert x.tolist() == [0, 1, 2, 3] and u.tolist() == [0, 1, 2, 3, 4]
    subset = torch.tensor([7, 3, 9, 1])  # a per-epoch draw: indices come back as training-set indices
    x, u = method._split(ctx, subset, torch.tensor([0.9, 0.1, 0.8, 0.2]))
    assert x.tolist() == [7, 9] and u.tolist() == [3, 1]


def test_web_scale_protocol_defaults() -> None:
    c1m = DivideMix.default_hparams(setting("clothing1m", "human", None, 14, 80))
    web = DivideMix.default_hparams(setting("webvision", "human", None, 50, 80))
    for hp in (c1m, web):
        values = (hp["warmup"].value, hp["lambda_u"].value, hp["alpha"].value, hp["batch_size"].value)
        assert values == (1, 0.0, 0.5, 32)
        assert hp["mix_labelled_only"].value is True and hp["lambda_u"].source == "paper"
    assert c1m["conf_penalty"].value is True and web["conf_penalty"].value is False
    assert DivideMix.default_hparams(setting("cifar10", "sym", 0.5, 10, 300))["mix_labelled_only"].value is False


@pytest.mark.parametrize(("key", "value"), [("p_threshold", 1.5), ("warmup", -1), ("batch_size", 1), ("T", 0)])
def test_bad_hyperparameters_name_the_key(key: str, value: object) -> None:
    from noisybench.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        DivideMix.resolve_hparams(setting("digits", "sym", 0.5, 10, 40), {key: value})


def test_cifar_n_gets_the_cifar_protocol_as_suite_values() -> None:
    c10n = DivideMix.default_hparams(setting("cifar10n", "human", None, 10, 300))
    c100n = DivideMix.default_hparams(setting("cifar100n", "human", None, 100, 300))
    assert (c10n["lambda_u"].value, c10n["warmup"].value, c10n["batch_size"].value) == (0.0, 10, 64)
    assert (c100n["lambda_u"].value, c100n["warmup"].value) == (150.0, 30)
    assert {c100n[k].source for k in ("lambda_u", "warmup", "rampup", "batch_size")} == {"suite"}
    # the official code penalises confidence under its `asym` mode only; for human noise that is a suite choice
    assert (c10n["conf_penalty"].value, c10n["conf_penalty"].source) == (False, "suite")


def test_clothing1m_protocol_co_divides_each_epochs_fresh_draw(tmp_path, monkeypatch) -> None:
    """On Clothing1M's per-epoch class-balanced draw the GMM and the X/U split use that draw only."""
    from noisybench.config import Grid
    from noisybench.plan import expand_grid
    from noisybench.trainer import Trainer
    from tests.datasets.fixtures import write_clothing1m

    root = write_clothing1m(tmp_path / "images", n_noisy=84, n_val=14, n_test=14)
    grid = Grid(name="c1m", datasets=["clothing1m"], methods=["dividemix"], noise=["none"], seeds=[1],
                train={"protocol": "fast", "epochs": 3, "arch": "airbench", "arch_kwargs": {"widths": [8, 8, 8]},
                       "batch_size": 8, "num_workers": 0, "eval_batch_size": 64, "val_fraction": 0.1},
                dataset_params={"clothing1m": {"epoch_samples": 28, "image_size": 36, "crop": 32}},
                method_params={"dividemix": {"batch_size": 4, "warmup_samples": 0, "epoch_samples": 0}},
                data_root=str(root))
    run = expand_grid(grid)[0]
    assert run.hparams["mix_labelled_only"] is True and run.hparams["warmup"] == 1
    trainer = Trainer(run)
    ctx, method = trainer.setup()
    ctx.begin_epoch(1)
    pool = ctx.epoch_indices
    assert 0 < len(pool) < ctx.num_train  # a fresh draw, not the whole noisy set
    import noisybench.methods.dividemix as dm

    sizes: list[int] = []
    real_gmm = dm.gmm_clean_probability
    def recording_gmm(losses, seed):
        sizes.append(len(losses))
        return real_gmm(losses, seed)

    monkeypatch.setattr(dm, "gmm_clean_probability", recording_gmm)
    out = trainer.run()
    assert [h["epoch"] for h in out["history"]] == [0, 1, 2]
    assert sizes and all(n == len(pool) for n in sizes)  # 2 nets x 2 epochs, each on that epoch's draw
    after_warmup = out["history"][1:]
    assert all(h["loss_u"] == 0.0 for h in after_warmup)  # only labelled rows are mixed
    assert all(0 < h["selected_frac"] <= 1 for h in after_warmup)


def test_cifar10n_worst_gets_the_higher_lambda_u() -> None:
    worst = DivideMix.default_hparams(setting("cifar10n", "human", None, 10, 300, noise_arg="worst"))
    aggre = DivideMix.default_hparams(setting("cifar10n", "human", None, 10, 300, noise_arg="aggre"))
    assert (worst["lambda_u"].value, aggre["lambda_u"].value) == (25.0, 0.0)
    assert worst["lambda_u"].source == "suite"


def test_clothing1m_each_network_draws_its_own_balanced_subsets(tmp_path, monkeypatch) -> None:
    """Official Clothing1M script: a separate warm-up draw and a separate per-epoch draw for each network;
    network k trains on the other network's draw and division (methods.md §6.2)."""
    from noisybench.config import Grid
    from noisybench.plan import expand_grid
    from noisybench.trainer import Trainer
    from tests.datasets.fixtures import write_clothing1m

    root = write_clothing1m(tmp_path / "images", n_noisy=84, n_val=14, n_test=14)
    paper = expand_grid(Grid(name="c1m", datasets=["clothing1m"], methods=["dividemix"], noise=["none"], seeds=[1],
                             train={"protocol": "paper"}, data_root=str(root)))[0]
    assert (paper.train.epochs, paper.train.lr, paper.train.milestones) == (80, 0.002, [40])
    assert (paper.hparams["warmup_samples"], paper.hparams["epoch_samples"]) == (64000, 32000)
    assert paper.hparam_sources["epoch_samples"] == "paper" and paper.train_sources["epochs"] == "paper"
    grid = Grid(name="c1m", datasets=["clothing1m"], methods=["dividemix"], noise=["none"], seeds=[1],
                train={"protocol": "fast", "epochs": 2, "arch": "airbench", "arch_kwargs": {"widths": [8, 8, 8]},
                       "batch_size": 8, "num_workers": 0, "eval_batch_size": 64, "val_fraction": 0.0},
                dataset_params={"clothing1m": {"image_size": 36, "crop": 32}},
                method_params={"dividemix": {"batch_size": 4, "warmup": 1, "warmup_samples": 28,
                                             "epoch_samples": 14}}, data_root=str(root))
    import noisybench.methods.dividemix as dm

    pools: list[list[int]] = []
    real_train_net = dm.DivideMix._train_net
    def recording_train_net(self, ctx, epoch, k, pool, w_pool):
        pools.append(sorted(pool.tolist()))
        labels = ctx.y_noisy[pool].cpu()
        assert len(pool) == 14 and torch.bincount(labels, minlength=14).max() <= 1  # balanced: <= 14/14 per class
        return real_train_net(self, ctx, epoch, k, pool, w_pool)

    warm: list[list[int]] = []
    real_warmup = dm.DivideMix._warmup
    def recording_warmup(self, ctx, k, indices):
        warm.append(sorted(indices.tolist()))
        return real_warmup(self, ctx, k, indices)

    monkeypatch.setattr(dm.DivideMix, "_train_net", recording_train_net)
    monkeypatch.setattr(dm.DivideMix, "_warmup", recording_warmup)
    Trainer(expand_grid(grid)[0]).run()
    assert len(warm) == 2 and all(len(w) == 28 for w in warm) and warm[0] != warm[1]
    assert len(pools) == 2 and pools[0] != pools[1]  # two networks, two separate draws


def test_paper_tags_only_where_the_paper_ran() -> None:
    """The confidence penalty follows the official `asym` rule; pair-flip values are not the paper's."""
    asym = DivideMix.default_hparams(setting("cifar10", "asym", 0.4, 10, 300))
    pair = DivideMix.default_hparams(setting("cifar10", "pairflip", 0.4, 10, 300))
    c100_asym = DivideMix.default_hparams(setting("cifar100", "asym", 0.4, 100, 300))
    assert (asym["conf_penalty"].value, asym["conf_penalty"].source) == (True, "paper")
    assert asym["lambda_u"].source == "paper"
    assert (pair["conf_penalty"].value, pair["conf_penalty"].source) == (False, "suite")
    assert pair["lambda_u"].source == "suite" and pair["p_threshold"].source == "paper-default"
    assert c100_asym["p_threshold"].source == "paper-default" and c100_asym["lambda_u"].source == "suite"
