"""Co-teaching against its official code (bhanML/Co-teaching @ 7c7fbe2), and the mechanics around it.

``ref_*`` functions are written from the official formulas (``loss.py``, ``main.py``), not copied: values and
gradients at float64 (rtol 1e-10, atol 1e-12) and float32 against the float64 reference (rtol 1e-5, atol 1e-6);
selections, keep counts and plans exactly.
"""

from __future__ import annotations

import copy
import dataclasses
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisybench.archs import create_model
from noisybench.config import Grid
from noisybench.conformance import Probe
from noisybench.errors import ConfigError
from noisybench.methods import coteaching
from noisybench.methods._small_loss import small_loss_rows
from noisybench.methods.coteaching import (
    REFERENCE_FUNCTIONS,
    CoTeaching,
    coteaching_loss,
    forget_rate_schedule,
    num_remember,
)
from noisybench.plan import expand_grid
from noisybench.schedules import beta1_at, lr_at
from noisybench.trainer import Trainer, belief_stats
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
def ref_loss_coteaching(y1: torch.Tensor, y2: torch.Tensor, t: torch.Tensor, forget_rate: float):  # noqa: ANN201
    """``loss_coteaching``: per-sample CE of each net, numpy argsort, ``int(remember_rate * B)``, each net's CE mean
    on the rows its peer kept, summed and divided again by the keep count."""
    loss_1 = F.cross_entropy(y1, t, reduction="none")
    loss_2 = F.cross_entropy(y2, t, reduction="none")
    ind_1_sorted = np.argsort(loss_1.detach().numpy())
    ind_2_sorted = np.argsort(loss_2.detach().numpy())
    remember = int((1 - np.float64(forget_rate)) * len(ind_1_sorted))
    ind_1_update, ind_2_update = ind_1_sorted[:remember], ind_2_sorted[:remember]
    loss_1_update = F.cross_entropy(y1[torch.as_tensor(ind_2_update)], t[torch.as_tensor(ind_2_update)])
    loss_2_update = F.cross_entropy(y2[torch.as_tensor(ind_1_update)], t[torch.as_tensor(ind_1_update)])
    return (torch.sum(loss_1_update) / remember, torch.sum(loss_2_update) / remember, set(ind_1_update.tolist()),
            set(ind_2_update.tolist()), loss_1, loss_2, remember)


def ref_rate_schedule(n_epoch: int, forget_rate: float, num_gradual: int, exponent: float) -> np.ndarray:
    """``main.py:134-135``."""
    rate_schedule = np.ones(n_epoch) * forget_rate
    rate_schedule[:num_gradual] = np.linspace(0, forget_rate ** exponent, num_gradual)
    return rate_schedule


def ref_plans(n_epoch: int, decay_start: int, lr: float) -> tuple[list[float], list[float]]:
    """``main.py:120-126``: the lr and Adam beta_1 plans."""
    alpha_plan, beta1_plan = [lr] * n_epoch, [0.9] * n_epoch
    for i in range(decay_start, n_epoch):
        alpha_plan[i] = float(n_epoch - i) / (n_epoch - decay_start) * lr
        beta1_plan[i] = 0.1
    return alpha_plan, beta1_plan


def _ours_and_grads(logits1, logits2, labels, rate, dtype):  # noqa: ANN001, ANN202
    z1 = logits1.to(dtype).clone().requires_grad_(True)
    z2 = logits2.to(dtype).clone().requires_grad_(True)
    out = coteaching_loss(z1, z2, labels, rate)
    (out.loss1 + out.loss2).backward()
    return out, z1.grad, z2.grad


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> None:
    torch.testing.assert_close(a, b.to(a.dtype), rtol=rtol, atol=atol)


CASES = [  # (batch, classes, scale, forget rate, classes absent from the batch)
    (16, 10, 3.0, 0.2, 0),
    (16, 10, 3.0, 0.45, 3),  # three classes absent from the batch
    (16, 10, 100.0, 0.5, 0),  # extreme logits
    (10, 10, 3.0, 0.8, 0),  # (1 - 0.8) * 10 = 1.999...: one row kept
    (32, 100, 3.0, 0.0, 0),  # nothing forgotten
    (128, 10, 5.0, float(ref_rate_schedule(200, 0.45, 10, 1)[3]), 0),  # a rate of the official plan
]


@pytest.mark.parametrize(("dtype", "rtol", "atol"), [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize(("batch", "classes", "scale", "rate", "absent"), CASES)
def test_loss_selection_and_gradients_equal_the_official_formula(dtype, rtol, atol, batch, classes, scale, rate,
                                                                 absent) -> None:
    logits1, logits2, labels = _inputs(batch, classes, scale, absent=absent)
    z1 = logits1.clone().requires_grad_(True)
    z2 = logits2.clone().requires_grad_(True)
    loss1, loss2, kept1, kept2, ce1, ce2, remember = ref_loss_coteaching(z1, z2, labels, rate)
    assert len(set(ce1.tolist())) == batch and len(set(ce2.tolist())) == batch  # no ties: the order is defined
    (loss1 + loss2).backward()
    out, g1, g2 = _ours_and_grads(logits1, logits2, labels, rate, dtype)
    assert out.num_remember == remember == num_remember(rate, batch)
    assert set(out.keep1.nonzero().flatten().tolist()) == kept1  # exact selections
    assert set(out.keep2.nonzero().flatten().tolist()) == kept2
    assert out.loss1.dtype == dtype and out.ce1.dtype == dtype
    _close(out.loss1.detach(), loss1.detach(), rtol, atol)
    _close(out.loss2.detach(), loss2.detach(), rtol, atol)
    _close(out.ce1.detach(), ce1.detach(), rtol, atol)
    _close(out.ce2.detach(), ce2.detach(), rtol, atol)
    _close(g1, z1.grad, rtol, atol / batch)
    _close(g2, z2.grad, rtol, atol / batch)


def test_reference_functions_are_the_module_numerics() -> None:
    assert REFERENCE_FUNCTIONS == (coteaching.coteaching_loss, coteaching.num_remember, coteaching.forget_rate_schedule)
    fields = [f.name for f in dataclasses.fields(coteaching.CoteachingOutput)]
    assert fields == ["loss1", "loss2", "keep1", "keep2", "ce1", "ce2", "num_remember"]


@pytest.mark.parametrize(("rate", "batch", "expected"), [(0.8, 10, 1), (0.2, 128, 102), (0.5, 128, 64), (0.45, 128, 70),
                                                         (0.3, 10, 7), (0.7, 10, 3), (0.9, 10, 0), (0.0, 128, 128)])
def test_keep_count_truncates_in_float64(rate: float, batch: int, expected: int) -> None:
    assert num_remember(rate, batch) == expected == int((1 - np.float64(rate)) * batch)


def test_keep_counts_of_every_official_plan_entry() -> None:
    for tau in (0.2, 0.45, 0.5, 0.8):
        for rate in ref_rate_schedule(200, tau, 10, 1):
            assert num_remember(rate, 128) == int((1 - rate) * 128)


def test_a_selection_that_keeps_nothing_is_refused_not_nan() -> None:
    logits1, logits2, labels = _inputs(10, 10, 3.0)
    with pytest.raises(ValueError, match="keeps int"):
        coteaching_loss(logits1, logits2, labels, 0.95)  # int(0.05 * 10) = 0: the official loss would be NaN


def test_ties_keep_the_earlier_row() -> None:
    rows, mask = small_loss_rows(torch.tensor([1.0, 0.5, 0.5, 0.5, 2.0]), 2)
    assert rows.tolist() == [1, 2] and mask.tolist() == [False, True, True, False, False]


@pytest.mark.parametrize(("n_epoch", "tau", "num_gradual", "exponent"),
                         [(200, 0.5, 10, 1), (200, 0.45, 5, 0.5), (200, 0.2, 15, 2), (41, 0.2, 3, 1), (200, 0.5, 0, 1),
                          (200, 0.5, 1, 1), (10, 0.3, 10, 1)])
def test_forget_rate_schedule_equals_the_official_plan(n_epoch, tau, num_gradual, exponent) -> None:
    ours = forget_rate_schedule(n_epoch, tau, num_gradual, exponent)
    assert ours.dtype == np.float64
    np.testing.assert_array_equal(ours, ref_rate_schedule(n_epoch, tau, num_gradual, exponent))


def test_forget_rate_schedule_refuses_a_ramp_longer_than_the_plan() -> None:
    with pytest.raises(ValueError, match="num_gradual"):
        forget_rate_schedule(5, 0.5, 6, 1)


# ------------------------------------------------------------------ the double division
def test_single_division_trains_on_the_mean_over_the_peer_kept_rows() -> None:
    logits1, logits2, labels = _inputs(64, 10, 3.0, seed=3)
    out, g1, _ = _ours_and_grads(logits1, logits2, labels, 0.5, torch.float64)
    z1 = logits1.clone().requires_grad_(True)
    kept2 = out.keep2.nonzero().flatten()
    F.cross_entropy(z1[kept2], labels[kept2]).backward()  # the paper's mean over the peer's selection
    torch.testing.assert_close(g1 * out.num_remember, z1.grad, rtol=1e-12, atol=1e-15)  # official: k times smaller


@pytest.mark.parametrize("double", [True, False])
def test_one_step_equals_the_official_two_backward_passes_bit_for_bit(double: bool) -> None:
    """``step`` back-propagates loss1 + loss2 once and steps both networks' Adams; the official code runs
    ``loss_1.backward(); optimizer1.step(); loss_2.backward(); optimizer2.step()``. Five batches: identical weights.
    Without the double division both losses are k times the official ones."""
    torch.manual_seed(0)
    nets = [create_model("mlp", (8,), 4, hidden=[16]).double() for _ in range(2)]
    twin = copy.deepcopy(nets)
    opts = [torch.optim.Adam(n.parameters(), lr=1e-2) for n in nets]
    twin_opts = [torch.optim.Adam(n.parameters(), lr=1e-2) for n in twin]

    def optimize(loss: torch.Tensor, which: list[int] | None = None) -> None:
        for opt in opts:
            opt.zero_grad()
        loss.backward()
        for opt in opts:
            opt.step()

    method = CoTeaching(forget_rate=0.5, num_gradual=0, exponent=1.0, double_division=double)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        x, y = torch.randn(20, 8, generator=g, dtype=torch.float64), torch.randint(0, 4, (20,), generator=g)
        method.step(SimpleNamespace(nets=nets, optimize=optimize), SimpleNamespace(x=x, y=y, index=torch.arange(20)),
                    0.5)
        out = coteaching_loss(twin[0](x), twin[1](x), y, 0.5)
        scale = 1.0 if double else float(out.num_remember)
        twin_opts[0].zero_grad()
        (out.loss1 * scale).backward()
        twin_opts[0].step()
        twin_opts[1].zero_grad()
        (out.loss2 * scale).backward()
        twin_opts[1].step()
        for a, b in zip([*nets[0].state_dict().values(), *nets[1].state_dict().values()],
                        [*twin[0].state_dict().values(), *twin[1].state_dict().values()]):
            assert torch.equal(a, b)


def test_single_division_moves_sgd_k_times_further() -> None:
    """Under SGD the official double division takes a k-fold smaller step than the paper's mean over the kept rows."""
    logits1, logits2, labels = _inputs(64, 10, 3.0, seed=4)
    official, g_official, _ = _ours_and_grads(logits1, logits2, labels, 0.25, torch.float64)
    z = logits1.clone().requires_grad_(True)
    out = coteaching_loss(z, logits2, labels, 0.25)
    (out.loss1 * out.num_remember).backward()
    assert official.num_remember == 48
    torch.testing.assert_close(z.grad, g_official * 48, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ hyperparameters and recipes
def test_hyperparameters_per_protocol() -> None:
    paper = CoTeaching.resolve_hparams(setting("cifar10", "sym-draw", 0.5, 10, 199, paper_epochs=199))
    assert paper == ({"double_division": True, "exponent": 1.0, "forget_rate": 0.5, "num_gradual": 10},
                     {"double_division": "paper-default", "exponent": "paper-default", "forget_rate": "paper-default",
                      "num_gradual": "paper-default"})
    shared = CoTeaching.resolve_hparams(setting("cifar10", "sym-draw", 0.5, 10, 120, paper_epochs=199,
                                                protocol="shared"))
    assert shared[0] == {"double_division": False, "exponent": 1.0, "forget_rate": 0.2, "num_gradual": 6}
    assert shared[1]["forget_rate"] == shared[1]["double_division"] == shared[1]["num_gradual"] == "suite"
    # paper protocol on a family without a published recipe: the oracle rate, but the shared SGD recipe
    other = CoTeaching.resolve_hparams(setting("digits", "pairflip-draw", 0.45, 10, 40))
    assert other[0] == {"double_division": False, "exponent": 1.0, "forget_rate": 0.45, "num_gradual": 3}
    human = CoTeaching.resolve_hparams(setting("cifar10n", "human", None, 10, 120, noise_arg="aggre"))
    assert human[0]["forget_rate"] == 0.2 and human[1]["forget_rate"] == "suite"
    clean = CoTeaching.resolve_hparams(setting("cifar10", "none", None, 10, 199, paper_epochs=199))
    assert clean[0]["forget_rate"] == 0.0 and clean[1]["forget_rate"] == "paper-default"


@pytest.mark.parametrize(("key", "value"), [("forget_rate", 1.0), ("forget_rate", -0.1), ("num_gradual", -1),
                                            ("num_gradual", 2.5), ("exponent", 0.0), ("double_division", "yes")])
def test_bad_hyperparameters_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        CoTeaching.resolve_hparams(setting("cifar10", "sym", 0.5, 10, 199), {key: value})


def test_every_search_space_corner_passes_the_checks() -> None:
    for s in (setting("cifar10", "sym-draw", 0.5, 10, 199, paper_epochs=199),
              setting("digits", "sym", 0.5, 10, 40, protocol="shared")):
        space = CoTeaching.search_space(s)
        assert set(space) == {"forget_rate", "num_gradual", "exponent"}
        for u in (0.0, 0.37, 1.0):
            point = {k: dim.value_at(u) for k, dim in space.items()}
            CoTeaching.resolve_hparams(s, point)


def _paper_run(dataset: str, method: str = "coteaching") -> Any:
    grid = Grid(name="p", datasets=[dataset], methods=[method], noise=["sym-draw:0.5"], seeds=[1],
                train={"protocol": "paper"})
    return expand_grid(grid)[0]


@pytest.mark.parametrize(("dataset", "decay_start"), [("cifar10", 80), ("cifar100", 100)])
def test_paper_recipe_and_its_lr_and_beta1_plans_equal_the_official_ones(dataset: str, decay_start: int) -> None:
    run = _paper_run(dataset)
    train = run.train
    assert (train.arch, train.arch_kwargs, train.epochs, train.optimizer, train.lr, train.weight_decay) == (
        "coteaching_cnn", {"dropout_in_eval": True}, 199, "adam", 1e-3, 0.0)
    assert (train.batch_size, train.augment, train.normalize, train.val_fraction) == (128, False, False, 0.0)
    assert (train.schedule, train.milestones, train.adam_beta1_tail) == ("linear-tail", [decay_start - 1], 0.1)
    assert {run.train_sources[k] for k in ("arch", "epochs", "schedule", "normalize", "val_fraction")} == {"paper"}
    assert "main.py:287" in run.train_refs["epochs"] and "model.py:45,54" in run.train_refs["arch"]
    alpha_plan, beta1_plan = ref_plans(200, decay_start, 1e-3)
    for epoch in range(train.epochs):  # official epoch = suite epoch + 1
        assert lr_at(train, epoch) == alpha_plan[epoch + 1]
        assert beta1_at(train, epoch) == beta1_plan[epoch + 1]
    assert lr_at(train, 198) == pytest.approx(1e-3 / (200 - decay_start))  # never 0: lr/120 on CIFAR-10


def test_the_method_reads_the_official_forget_rate_plan_at_epoch_plus_one() -> None:
    run = _paper_run("cifar10")
    method = CoTeaching(**run.hparams)
    method.setup(type("Ctx", (), {"epochs": 199, "batch_size": 128})())
    official = ref_rate_schedule(200, 0.5, 10, 1)
    assert [method.forget_rate_at(e) for e in range(199)] == official[1:].tolist()
    assert method.forget_rate_at(0) == pytest.approx(0.5 / 9)


def test_dropout_stays_on_at_evaluation_in_the_paper_network() -> None:
    torch.manual_seed(0)
    net = create_model("coteaching_cnn", (3, 32, 32), 10, **_paper_run("cifar10").train.arch_kwargs).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))  # F.dropout2d without the training flag, as model.py:45,54
        torch.manual_seed(5)
        first = net(x)
        torch.manual_seed(5)
        assert torch.equal(first, net(x))  # drawn from the seeded generator: reproducible


# ------------------------------------------------------------------ through the trainer
ADAM_TAIL = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "linear-tail", "milestones": [2],
             "adam_beta1_tail": 0.1, "epochs": 5}


def _run(hparams: dict[str, Any], train: dict[str, Any], method: str = "coteaching", noise: str = "sym:0.4"):  # noqa: ANN202
    grid = Grid(name="t", datasets=["blobs"], methods=[method], noise=[noise], seeds=[1],
                train={"device": "cpu", **train}, method_params={method: hparams},
                dataset_params={"blobs": {"n_samples": 400, "dim": 8, "classes": 4}})
    return expand_grid(grid)[0]


class _Capturing(Trainer):
    """A trainer that keeps its context and records each epoch's optimiser settings."""

    def setup(self):  # noqa: ANN201
        self.ctx, self.method = super().setup()
        self.optim_log: list[list[tuple[float, float]]] = []
        train_epoch = self.method.train_epoch

        def logged(ctx, epoch):  # noqa: ANN001, ANN202
            self.optim_log.append([(o.param_groups[0]["lr"], o.param_groups[0]["betas"][0]) for o in ctx.optimizers])
            return train_epoch(ctx, epoch)

        self.method.train_epoch = logged
        return self.ctx, self.method


def test_forget_rate_keep_count_lr_and_beta1_by_epoch() -> None:
    trainer = _Capturing(_run({"forget_rate": 0.4, "num_gradual": 4}, ADAM_TAIL))
    history = trainer.run()["history"]
    plan = ref_rate_schedule(6, 0.4, 4, 1)
    assert [h["forget_rate"] for h in history] == plan[1:].tolist()  # 0.133.., 0.266.., 0.4, 0.4, 0.4
    assert [h["num_remember"] for h in history] == [int((1 - r) * 128) for r in plan[1:]]
    assert [h["lr"] for h in history] == [1e-3, 1e-3, 1e-3, 1e-3 * 2 / 3, 1e-3 / 3]
    assert trainer.optim_log == [[(h["lr"], b)] * 2 for h, b in zip(history, [0.9, 0.9, 0.1, 0.1, 0.1])]


def test_exact_resume_mid_ramp_across_the_beta1_switch() -> None:
    probe = Probe("coteaching", {"forget_rate": 0.4, "num_gradual": 4, "double_division": True}, train=ADAM_TAIL)
    for stop in (1, 3):  # inside the ramp, and after the beta_1 switch
        result = probe.resume(stop_after=stop)
        assert result.ok, result.detail


def test_the_trainer_scores_each_networks_selection(monkeypatch) -> None:
    outs: list[Any] = []

    def recording(*args: Any) -> Any:
        out = coteaching_loss(*args)
        outs.append(out)
        return out

    monkeypatch.setattr(coteaching, "coteaching_loss", recording)
    trainer = Trainer(tiny_run("coteaching", {"forget_rate": 0.3, "num_gradual": 0}, epochs=1))
    ctx, method = trainer.setup()
    ctx.begin_epoch(0)
    method.train_epoch(ctx, 0)
    indices, kept = method.selection()
    batches = len(ctx.epoch_indices) // ctx.batch_size  # full batches only
    assert len(outs) == batches and len(indices) == 2 * batches * ctx.batch_size
    assert torch.equal(kept, torch.cat([m for o in outs for m in (o.keep1, o.keep2)]))
    assert int(kept.sum()) == 2 * batches * num_remember(0.3, ctx.batch_size)
    clean = trainer._clean
    truly = ctx.y_noisy[indices] == clean[indices]
    stats = belief_stats(method, ctx.y_noisy, clean)
    assert stats["selected_frac"] == pytest.approx(float(kept.float().mean()))
    assert stats["select_precision"] == pytest.approx(float((kept & truly).sum() / kept.sum()))
    assert stats["select_recall"] == pytest.approx(float((kept & truly).sum() / truly.sum()))


def test_history_records_both_networks_and_the_selection() -> None:
    out = Trainer(tiny_run("coteaching", epochs=2)).run()
    row = out["history"][-1]
    assert {"test_acc_net2", "selected_frac", "select_precision", "forget_rate", "num_remember"} <= set(row)
    assert row["select_precision"] > 0.6  # sym:0.4: better than the 60 % clean share of what it judged


def test_a_forget_rate_that_keeps_nothing_fails_before_training() -> None:
    with pytest.raises(ConfigError, match="forget_rate .*batch_size"):
        Trainer(_run({"forget_rate": 0.995}, {"epochs": 2})).run()


def test_a_training_set_smaller_than_one_batch_fails_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="no full batch of 512.*batch_size"):
        Trainer(_run({}, {"epochs": 1, "batch_size": 512})).run()
