"""PES and PES-semi against the official formulas (tmllab/PES @ 5466238), and the mechanics the formulas cannot
show: one refinement inside epoch T1, renewed layers frozen afterwards (also after a resume), the confident split,
PES-semi's MixMatch epoch.

Each ``ref_*`` function is written from the official code named in its docstring, not imported from it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisybench.config import Grid, RunConfig
from noisybench.conformance import Probe
from noisybench.errors import ConfigError
from noisybench.methods import pes as pes_module
from noisybench.methods.dividemix import linear_rampup
from noisybench.methods.pes import PES, pes_class_weights, pes_confident_mask, pes_weighted_ce
from noisybench.methods.pes_semi import PESSemi, pes_batch_sizes, pes_mixmatch_loss
from noisybench.plan import expand_grid
from noisybench.trainer import Trainer
from tests.methods._helpers import setting

F64 = (torch.float64, 1e-10, 1e-12)
F32 = (torch.float32, 1e-5, 1e-6)


def _close(ours: torch.Tensor, ref: torch.Tensor, rtol: float, atol: float) -> None:
    torch.testing.assert_close(ours.to(ref.dtype), ref, rtol=rtol, atol=atol)


def _logits(b: int, c: int, scale: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g, dtype=torch.float64) * scale


# ------------------------------------------------------------------ reference formulas (PES_cs.py, PES_semi.py)
def ref_splite_confident(outs: torch.Tensor, noisy: np.ndarray) -> list[int]:
    """``splite_confident``: ``torch.max(outs, 1)``, then every i with pred == noisy label, ascending."""
    _, preds = torch.max(outs, 1)
    return [i for i in range(len(noisy)) if preds[i] == noisy[i]]


def ref_class_weights(noisy: np.ndarray, confident: list[int], num_class: int, cap: float | None):
    """``update_trainloader`` lines 90-101 (PES_semi.py 182-193 with the cap): counts, numpy float64, FloatTensor."""
    train_nums = np.zeros(num_class, dtype=int)
    for item in noisy[confident]:
        train_nums[item] += 1
    with np.errstate(divide="ignore"):
        cw = np.mean(train_nums[train_nums != 0]) / train_nums
        cw[cw == np.inf] = 0
        if cap is not None:
            cw[cw > cap] = cap
    return train_nums, torch.FloatTensor(cw)


def ref_weighted_ce(logits: torch.Tensor, labels: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``nn.CrossEntropyLoss(weight=w)``: sum_i w_{y_i} (-log p_{i,y_i}) / sum_i w_{y_i}."""
    nll = -torch.log_softmax(logits, dim=1)[torch.arange(len(labels)), labels]
    wy = w.to(logits.dtype)[labels]
    return (wy * nll).sum() / wy.sum()


def ref_mixmatch(logits: torch.Tensor, mixed_target: torch.Tensor, batch_size: int, class_weights: torch.Tensor):
    """``MixMatch_train`` lines 124-131: Lx_mean = -mean over rows of log_softmax * target; Lx = sum(Lx_mean * w);
    Lu = mean((softmax(logits_u) - target_u)^2)."""
    logits_x, logits_u = logits[: batch_size * 2], logits[batch_size * 2:]
    lx_mean = -torch.mean(F.log_softmax(logits_x, dim=1) * mixed_target[: batch_size * 2], 0)
    lx = torch.sum(lx_mean * class_weights.to(logits.dtype))
    lu = torch.mean((torch.softmax(logits_u, dim=1) - mixed_target[batch_size * 2:]) ** 2)
    return lx, lu


def ref_batch_sizes(n_con: int, n_uncon: int, batch: int) -> tuple[int, int]:
    """``update_trainloader`` lines 176-177 of PES_semi.py."""
    uncon = int(batch / 2) if n_uncon > n_con else int(n_uncon / (n_con + n_uncon) * batch)
    return batch - uncon, uncon


def ref_linear_rampup(current: float, warm_up: int, rampup_length: int = 16) -> float:
    """``linear_rampup`` without the lambda_u factor (PES_semi.py:64-66)."""
    return float(np.clip((current - warm_up) / rampup_length, 0.0, 1.0))


# ------------------------------------------------------------------ pes_confident_mask / class weights
def test_confident_mask_is_the_official_split_with_first_maximum_on_ties() -> None:
    probs = torch.softmax(_logits(40, 5, 2.0), dim=1)
    probs[3] = torch.tensor([0.4, 0.4, 0.1, 0.05, 0.05], dtype=torch.float64)  # a tie: the first class wins
    noisy = torch.randint(0, 5, (40,), generator=torch.Generator().manual_seed(1))
    noisy[3] = 0
    noisy[:5] = probs[:5].argmax(1)  # some surely confident samples
    mask = pes_confident_mask(probs, noisy)
    assert mask.dtype == torch.bool and mask.shape == (40,)
    assert mask.nonzero().squeeze(1).tolist() == ref_splite_confident(probs, noisy.numpy())
    assert bool(mask[3]) and 0 < int(mask.sum()) < 40


@pytest.mark.parametrize("cap", [None, 3.0])
def test_class_counts_and_weights_are_the_officials_exactly(cap: float | None) -> None:
    noisy = torch.tensor([0] * 30 + [1] * 2 + [2] * 8 + [3] * 5 + [4] * 7)  # class 5 never appears
    mask = torch.ones(len(noisy), dtype=torch.bool)
    mask[40:45] = False  # class 3 has no confident sample: an empty class
    counts, weights = pes_class_weights(noisy, mask, 6, cap=cap)
    ref_counts, ref_weights = ref_class_weights(noisy.numpy(), mask.nonzero().squeeze(1).tolist(), 6, cap)
    assert counts.dtype == torch.int64 and counts.tolist() == ref_counts.tolist() == [30, 2, 8, 0, 7, 0]
    assert weights.dtype == torch.float32 and torch.equal(weights, ref_weights)  # bit for bit
    assert weights[3] == 0 and weights[5] == 0  # empty classes exactly 0, also under the cap
    if cap is None:
        assert float(weights[1]) == pytest.approx((47 / 4) / 2)  # 5.875, above the semi cap
    else:
        assert float(weights[1]) == 3.0


def test_class_weights_in_float64_and_without_any_confident_sample() -> None:
    noisy = torch.tensor([0, 1, 1, 2])
    counts, weights = pes_class_weights(noisy, torch.tensor([True, True, True, False]), 3, dtype=torch.float64)
    assert weights.dtype == torch.float64 and weights.tolist() == [1.5, 0.75, 0.0]
    counts, weights = pes_class_weights(noisy, torch.zeros(4, dtype=torch.bool), 3)
    assert counts.tolist() == [0, 0, 0] and weights.tolist() == [0.0, 0.0, 0.0]  # official: NaN, weighing no batch


# ------------------------------------------------------------------ pes_weighted_ce
@pytest.mark.parametrize("scale", [3.0, 100.0])
@pytest.mark.parametrize(("dtype", "rtol", "atol"), [F64, F32])
def test_weighted_ce_value_and_gradient(dtype: torch.dtype, rtol: float, atol: float, scale: float) -> None:
    logits64 = _logits(16, 6, scale)
    labels = torch.tensor([0, 1, 2, 4, 0, 1, 2, 4] * 2)  # classes 3 and 5 absent from the batch
    weights = torch.tensor([0.5, 2.0, 1.0, 0.0, 3.0, 0.0], dtype=torch.float32)
    z_ref = logits64.clone().requires_grad_(True)
    ref = ref_weighted_ce(z_ref, labels, weights)
    ref.backward()
    z = logits64.to(dtype).requires_grad_(True)
    loss = pes_weighted_ce(z, labels, weights)
    loss.backward()
    assert loss.dtype == dtype and torch.isfinite(loss)
    _close(loss.detach(), ref.detach(), rtol, atol)
    _close(z.grad, z_ref.grad, rtol, atol)


def test_weighted_ce_equals_the_official_loss_module() -> None:
    logits, labels = _logits(8, 4, 2.0).float(), torch.tensor([0, 1, 2, 3, 0, 1, 2, 1])
    weights = torch.tensor([1.0, 0.5, 2.0, 0.0])
    official = torch.nn.CrossEntropyLoss(weight=weights)(logits, labels)
    assert torch.equal(pes_weighted_ce(logits, labels, weights), official)


# ------------------------------------------------------------------ PES-semi's loss, batch sizes, ramp
@pytest.mark.parametrize("scale", [3.0, 100.0])
@pytest.mark.parametrize(("dtype", "rtol", "atol"), [F64, F32])
def test_mixmatch_terms_value_and_gradient(dtype: torch.dtype, rtol: float, atol: float, scale: float) -> None:
    b_x, rows, c = 3, 10, 5  # 2 * 3 labelled rows, 4 unlabelled
    logits64 = _logits(rows, c, scale, seed=2)
    targets = torch.softmax(_logits(rows, c, 1.0, seed=3), dim=1)
    weights = torch.tensor([3.0, 0.0, 1.25, 0.5, 3.0])  # a capped class and an empty one
    z_ref = logits64.clone().requires_grad_(True)
    lx_ref, lu_ref = ref_mixmatch(z_ref, targets, b_x, weights)
    (lx_ref + 7.0 * lu_ref).backward()
    z = logits64.to(dtype).requires_grad_(True)
    lx, lu = pes_mixmatch_loss(z, targets.to(dtype), 2 * b_x, weights)
    (lx + 7.0 * lu).backward()
    _close(lx.detach(), lx_ref.detach(), rtol, atol)
    _close(lu.detach(), lu_ref.detach(), rtol, atol)
    _close(z.grad, z_ref.grad, rtol, atol)
    only_x = pes_mixmatch_loss(logits64[:6], targets[:6], 6, weights)
    assert float(only_x[1]) == 0.0 and torch.equal(only_x[0], ref_mixmatch(logits64[:6], targets[:6], 3, weights)[0])


@pytest.mark.parametrize(("n_con", "n_uncon"), [(30000, 20000), (20000, 30000), (49990, 10), (3, 997), (500, 500)])
def test_batch_sizes_truncate_as_the_official_split(n_con: int, n_uncon: int) -> None:
    assert pes_batch_sizes(n_con, n_uncon, 128) == ref_batch_sizes(n_con, n_uncon, 128)
    assert pes_batch_sizes(30000, 20000, 128) == (77, 51)  # int(0.4 * 128) = 51


def test_ramp_is_the_official_linear_rampup_from_t1() -> None:
    for current in (19.0, 20.0, 20.5, 27.25, 36.0, 50.0):
        assert linear_rampup(current, 20, 16) == ref_linear_rampup(current, 20)


# ------------------------------------------------------------------ hyperparameters and recipes
def test_hyperparameters_per_setting() -> None:
    c10 = PES.default_hparams(setting("cifar10", "sym-draw", 0.5, 10, 200, paper_epochs=200))
    assert {k: (v.value, v.source) for k, v in c10.items()} == {
        "T1": (25, "paper"), "T2": (7, "paper"), "T3": (5, "paper"), "pes_lr": (1e-4, "paper")}
    assert PES.default_hparams(setting("cifar100", "sym-draw", 0.5, 100, 200, paper_epochs=200))["T1"].value == 30
    shared = PES.default_hparams(setting("cifar10", "sym", 0.5, 10, 120, paper_epochs=200, protocol="shared"))
    assert (shared["T1"].value, shared["T1"].source, shared["T2"].value) == (15, "suite", 7)
    digits = PES.default_hparams(setting("digits", "sym", 0.5, 10, 40))
    assert (digits["T1"].value, digits["T1"].source, digits["T3"].source) == (5, "suite", "paper-default")
    assert (digits["pes_lr"].value, digits["pes_lr"].source) == (1e-3, "suite")  # small data: fewer Adam steps
    animal = PES.default_hparams(setting("animal10n", "human", None, 10, 100))
    assert (animal["pes_lr"].value, animal["pes_lr"].source) == (1e-4, "paper-default")


def test_pes_semi_lambda_u_per_setting() -> None:
    def lam(*args: Any, **kw: Any) -> tuple[float, str]:
        hp = PESSemi.default_hparams(setting(*args, **kw))["lambda_u"]
        return hp.value, hp.source

    assert lam("cifar10n", "human", None, 10, 300, noise_arg="worst") == (5.0, "paper")
    assert lam("cifar100n", "human", None, 100, 300) == (75.0, "paper")
    assert lam("cifar10", "idn", 0.4, 10, 300) == (15.0, "paper")
    assert lam("cifar100", "pairflip-draw", 0.45, 100, 300) == (50.0, "paper")
    assert lam("cifar10", "sym-draw", 0.5, 10, 300) == (150.0, "paper-default")
    assert lam("mnist1d", "sym", 0.5, 10, 30) == (15.0, "suite")
    c100 = PESSemi.default_hparams(setting("cifar100", "sym-draw", 0.5, 100, 300, paper_epochs=300))
    assert (c100["T1"].value, c100["T2"].value, c100["rampup"].value) == (35, 5, 16)
    short = PESSemi.default_hparams(setting("cifar10", "sym", 0.5, 10, 30, paper_epochs=300, protocol="shared"))
    assert (short["T1"].value, short["rampup"].value, short["T2"].value) == (2, 2, 5)


@pytest.mark.parametrize(("key", "value"), [("T1", -1), ("T2", 1.5), ("pes_lr", 0.0)])
def test_bad_hyperparameters_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        PES.resolve_hparams(setting("digits", "sym", 0.5, 10, 40), {key: value})
    with pytest.raises(ConfigError, match="weight_cap"):
        PESSemi.resolve_hparams(setting("digits", "sym", 0.5, 10, 40), {"weight_cap": 0.0})


@pytest.mark.parametrize("cls", [PES, PESSemi])
def test_search_space_points_pass_the_checks(cls: type) -> None:
    s = setting("digits", "sym", 0.5, 10, 40)
    space = cls.search_space(s)
    defaults = {k: v.value for k, v in cls.default_hparams(s).items()}
    for u in (0.0, 0.37, 1.0):
        cls.check_hparams({**defaults, **{k: dim.value_at(u) for k, dim in space.items()}})


def _paper_plan(method: str, dataset: str, noise: str) -> RunConfig:
    grid = Grid(name="p", datasets=[dataset], methods=[method], noise=[noise], seeds=[1],
                train={"protocol": "paper"}, source="p.toml")
    return expand_grid(grid)[0]


@pytest.mark.parametrize(("method", "dataset", "arch", "epochs"), [
    ("pes", "cifar10", "resnet18", 200), ("pes", "cifar100", "resnet34", 200),
    ("pes-semi", "cifar10", "preact_resnet18", 300), ("pes-semi", "cifar100", "preact_resnet18", 300)])
def test_paper_recipes_are_tagged_paper_with_their_reference(method: str, dataset: str, arch: str,
                                                             epochs: int) -> None:
    run = _paper_plan(method, dataset, "sym-draw:0.5")
    assert (run.train.arch, run.train.epochs) == (arch, epochs)
    assert set(run.train_sources.values()) == {"paper"}
    if method == "pes":
        assert (run.train.lr, run.train.milestones, run.train.val_fraction) == (0.1, [100, 150], 0.1)
    else:
        assert (run.train.schedule, run.train.eta_min, run.train.val_fraction) == ("cosine", 0.0002, 0.0)
    assert run.hparam_sources["T1"] == "paper"


# ------------------------------------------------------------------ mechanics through the trainer
def _run(method: str, hparams: dict[str, Any], epochs: int, hidden: list[int] | None = None) -> RunConfig:
    grid = Grid(name="t", datasets=["blobs"], methods=[method], noise=["sym:0.4"], seeds=[1],
                train={"epochs": epochs, "device": "cpu", "batch_size": 32,
                       "arch_kwargs": {"hidden": hidden or [32, 32]}},
                method_params={method: hparams}, dataset_params={"blobs": {"n_samples": 400, "dim": 8, "classes": 4}})
    return expand_grid(grid)[0]


def _train_and_snapshot(config: RunConfig) -> tuple[list[dict[str, torch.Tensor]], Any, Any]:
    """Train ``config``; the network's parameters after every epoch, the trainer's context and the method."""
    held: dict[str, Any] = {}
    snaps: list[dict[str, torch.Tensor]] = []

    class _Trainer(Trainer):
        def setup(self) -> Any:
            held["ctx"], held["method"] = super().setup()
            return held["ctx"], held["method"]

    def on_epoch(history: list[dict[str, Any]]) -> None:
        snaps.append({k: v.detach().clone() for k, v in held["ctx"].nets[0].named_parameters()})

    held["out"] = _Trainer(config, on_epoch=on_epoch).run()
    return snaps, held["ctx"], held


def _changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> list[bool]:
    return [not torch.equal(a[k], b[k]) for k in a if k.startswith(prefixes)]


def test_pes_refines_once_inside_t1_then_freezes_the_renewed_layers(monkeypatch) -> None:
    """mlp 8-32-32-4: groups (0-3: first hidden), (4-6: second hidden), (7: classifier). T1 = 2."""
    renewals: list[list[int]] = []
    real = pes_module.reinitialise
    monkeypatch.setattr(pes_module, "reinitialise", lambda groups: (renewals.append([len(g) for g in groups]),
                                                                    real(groups)))
    snaps, ctx, held = _train_and_snapshot(_run("pes", {"T1": 2, "T2": 2, "T3": 1}, epochs=5))
    early, renewed = ("1.", "2."), ("4.", "5.", "7.")  # first hidden (linear, BN); second hidden and classifier
    assert renewals == [[3, 1], [1]]  # one refinement: last stage + classifier, then the classifier
    assert all(_changed(snaps[0], snaps[1], early + renewed))  # CE trains everything before T1
    assert not any(_changed(snaps[1], snaps[2], early))  # epoch T1: earlier layers frozen during the refinement
    assert all(_changed(snaps[1], snaps[2], renewed))
    for e in (3, 4):  # afterwards the renewed layers never change while the earlier ones do
        assert not any(_changed(snaps[e - 1], snaps[e], renewed))
        assert all(_changed(snaps[e - 1], snaps[e], early))
    assert [p.requires_grad for n, p in ctx.nets[0].named_parameters() if n.startswith(renewed)] == [False] * 6
    history = held["out"]["history"]
    assert [row["selected_frac"] for row in history[:3]] == [1.0, 1.0, 1.0]
    assert all(0 < row["selected_frac"] < 1 for row in history[3:])


def test_the_refinement_trains_only_with_its_own_adam() -> None:
    """Epoch T1 leaves the recipe's SGD state (momentum buffers) as it was: the refinement steps an Adam only."""
    run = _run("pes", {"T1": 1, "T2": 1, "T3": 1}, epochs=2)
    trainer = Trainer(run)
    ctx, method = trainer.setup()
    for epoch in range(2):
        ctx.begin_epoch(epoch)
        if epoch == 1:
            before = {id(p): s["momentum_buffer"].clone() for p, s in ctx.optimizers[0].state.items()}
        method.train_epoch(ctx, epoch)
    after = {id(p): s["momentum_buffer"] for p, s in ctx.optimizers[0].state.items()}
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_pes_trains_after_t1_on_the_confident_samples_only(monkeypatch) -> None:
    seen: list[torch.Tensor] = []
    real = pes_module.full_batches

    def spy(ctx, indices=None, batch_size=None, augment=True):  # noqa: ANN001, ANN202
        seen.append(ctx.epoch_indices if indices is None else indices)
        return real(ctx, indices, batch_size, augment)

    monkeypatch.setattr(pes_module, "full_batches", spy)
    run = _run("pes", {"T1": 1, "T2": 1, "T3": 1}, epochs=3)
    trainer = Trainer(run)
    ctx, method = trainer.setup()
    for epoch in range(3):
        ctx.begin_epoch(epoch)
        method.train_epoch(ctx, epoch)
    indices, mask = method.selection()
    assert len(seen) == 1 + 2 + 1  # CE, two refinement passes, the confident epoch
    assert torch.equal(seen[-1], indices[mask]) and 0 < int(mask.sum()) < len(mask)


@pytest.mark.parametrize("method", ["pes", "pes-semi"])
def test_resume_after_t1_refreezes_and_continues_exactly(method: str) -> None:
    train = {"epochs": 4, "batch_size": 32, "arch_kwargs": {"hidden": [32, 32]}}
    hp = {"T1": 1, "T2": 1, **({"T3": 1} if method == "pes" else {})}
    result = Probe(method, hp, train=train).resume(stop_after=2)  # resumes at epoch 2, after the refinement
    assert result.ok, result.detail


def test_resume_without_the_refreeze_would_differ(monkeypatch) -> None:
    """The resume check above can fail: a checkpoint that forgets the freeze trains the renewed layers again."""
    monkeypatch.setattr(PES, "load_state_dict", lambda self, state: setattr(self, "refined", bool(state["refined"])))
    train = {"epochs": 4, "batch_size": 32, "arch_kwargs": {"hidden": [32, 32]}}
    result = Probe("pes", {"T1": 1, "T2": 1, "T3": 1}, train=train).resume(stop_after=2)
    assert not result.ok


def test_pes_semi_freezes_the_classifier_and_mixes_every_epoch_from_t1(monkeypatch) -> None:
    alphas: list[tuple[int, float]] = []
    real_step = PESSemi._step

    def spy(self, ctx, x_raw, y, u_raw, weights, alpha):  # noqa: ANN001, ANN202
        alphas.append((ctx.epoch, alpha, len(x_raw), 0 if u_raw is None else len(u_raw)))
        return real_step(self, ctx, x_raw, y, u_raw, weights, alpha)

    monkeypatch.setattr(PESSemi, "_step", spy)
    snaps, ctx, held = _train_and_snapshot(_run("pes-semi", {"T1": 1, "T2": 2}, epochs=4))
    classifier, rest = ("7.",), ("1.", "2.", "4.", "5.")
    assert all(_changed(snaps[0], snaps[1], classifier))  # renewed and trained at T1
    for e in (2, 3):
        assert not any(_changed(snaps[e - 1], snaps[e], classifier))
        assert all(_changed(snaps[e - 1], snaps[e], rest))
    n_train = ctx.num_train
    steps = {e: sum(1 for a in alphas if a[0] == e) for e in range(4)}
    assert steps == {0: 0, 1: n_train // 32, 2: n_train // 32, 3: n_train // 32}  # MixMatch already in epoch T1
    assert {a[1] for a in alphas if a[0] < 2} == {4.0} and {a[1] for a in alphas if a[0] >= 2} == {0.75}
    assert all(bx + bu == 32 or bu == 0 for _, _, bx, bu in alphas)
    history = held["out"]["history"]
    assert history[0]["selected_frac"] == 1.0 and all(0 < r["selected_frac"] < 1 for r in history[1:])
    assert all(math.isfinite(r["loss_u"]) for r in history[1:])


def test_plan_prints_the_deviations_and_the_reproduced_traps() -> None:
    from noisybench.plan import render_plan

    text = render_plan([_paper_plan("pes", "cifar10", "sym-draw:0.5")])
    assert "deviation from the reference code: Validation split" in text
    assert "as the reference code: The renewed layers (the last stage and the classifier) are never trained" in text
    semi = render_plan([_paper_plan("pes-semi", "cifar100", "pairflip-draw:0.45")])
    assert "as the reference code: The renewed classifier is never trained again" in semi


def test_confident_epochs_do_not_synchronise_per_step() -> None:
    """After T1: no host-device synchronisation between steps; per epoch one read of the split and one of the
    losses (the shared sync test measures the refinement epoch)."""
    from noisybench.syncs import HostSyncCounter

    trainer = Trainer(_run("pes", {"T1": 2, "T2": 3, "T3": 3, "pes_lr": 0.01}, epochs=4))
    ctx, method = trainer.setup()
    for epoch in range(3):
        ctx.begin_epoch(epoch)
        method.train_epoch(ctx, epoch)
    marks: list[int] = []
    optimize = ctx.optimize

    def step(loss: torch.Tensor, which: list[int] | None = None, extra: Any = ()) -> None:
        optimize(loss, which, extra)
        marks.append(counter.total)

    ctx.optimize = step
    ctx.begin_epoch(3)
    with HostSyncCounter(ctx.device) as counter:
        method.train_epoch(ctx, 3)
    assert len(marks) >= 3 and all(b == a for a, b in zip(marks, marks[1:]))
    assert counter.total <= 2, counter.counts
