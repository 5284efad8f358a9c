"""SOP and SOP+: the official loss, consistency term and u/v SGD against a re-derivation from the official code
(float64 and float32), the method's use of them (u and v outside the trainer's optimisers and schedule, two-view
forward, strong-view policy), label estimates, exact resume of u and v, defaults and the paper recipes."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from noisybench.config import Grid
from noisybench.conformance import Probe
from noisybench.errors import ConfigError
from noisybench.methods import sop, sop_plus
from noisybench.plan import expand_grid
from noisybench.schedules import lr_at
from noisybench.search_space import LogUniform
from noisybench.trainer import Trainer
from tests.methods._helpers import batch, setting, tiny_run
from tests.methods._loss_refs import F32, F64, ref_sop_consistency, ref_sop_loss, ref_sop_optimizer

N, B, C = 40, 16, 10
#: (seed, logit scale, classes absent from the batch, two views, ratio_consistency, ratio_balance)
CASES = [(0, 3.0, (), False, 0.0, 0.0), (1, 3.0, (0, 3), False, 0.0, 0.1), (2, 100.0, (), False, 0.0, 0.0),
         (3, 100.0, (9,), True, 0.9, 0.1), (4, 3.0, (), True, 0.9, 0.1), (5, 3.0, (2,), True, 0.0, 0.1),
         (6, 100.0, (), True, 0.9, 0.0)]


def _case(seed: int, scale: float, absent: tuple[int, ...], two_view: bool):
    """float64 state u (N, 1), v (N, C) large enough that the clamps bind, a batch index, logits, labels."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(N, 1, generator=g, dtype=torch.float64) * 0.8  # some u^2 > 1: U's clamp blocks u's gradient
    v = torch.randn(N, C, generator=g, dtype=torch.float64) * 0.5
    index = torch.randperm(N, generator=g)[:B]
    rows = 2 * B if two_view else B
    logits = torch.randn(rows, C, generator=g, dtype=torch.float64) * scale
    present = torch.tensor([c for c in range(C) if c not in absent])
    labels = present[torch.randint(0, len(present), (B,), generator=g)]
    return u, v, index, logits, labels


def _grads(fn, logits: torch.Tensor, u: torch.Tensor, v: torch.Tensor):  # noqa: ANN001, ANN202
    """Loss and gradients with respect to the logits, u and v (on fresh leaves)."""
    z, uu, vv = (t.clone().requires_grad_(True) for t in (logits, u, v))
    loss = fn(z, uu, vv)
    loss.backward()
    return loss.detach(), z.grad, uu.grad, vv.grad


@pytest.mark.parametrize(("seed", "scale", "absent", "two_view", "lam_c", "lam_b"), CASES)
def test_sop_loss_equals_the_official_formula(seed, scale, absent, two_view, lam_c, lam_b) -> None:  # noqa: ANN001
    u, v, index, logits, labels = _case(seed, scale, absent, two_view)

    def ours(z, uu, vv):  # noqa: ANN001, ANN202
        return sop.sop_loss(index, z, labels, uu, vv, ratio_consistency=lam_c, ratio_balance=lam_b)

    def ref(z, uu, vv):  # noqa: ANN001, ANN202
        return ref_sop_loss(index, z, labels, uu, vv, C, lam_c, lam_b)

    got, want = _grads(ours, logits, u, v), _grads(ref, logits, u, v)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **F64)
    low = _grads(ours, logits.float(), u.float(), v.float())
    for a, b in zip(low, got):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, **F32)
    assert torch.isfinite(got[0]) and all(torch.isfinite(g).all() for g in got[1:])
    outside = torch.ones(N, dtype=torch.bool)
    outside[index] = False
    assert got[3][index].abs().sum() > 0 and not got[3][outside].any() and not got[2][outside].any()
    if two_view and lam_c == 0:  # view 2 enters the consistency term only
        assert torch.equal(got[1][B:], torch.zeros_like(got[1][B:]))


def test_the_cases_make_every_clamp_of_the_loss_bind() -> None:
    """Each clamp of the formula binds somewhere in the cases above (u^2 > 1, v^2 > 1, the floor of the corrected
    prediction before and after its L1 normalisation), so the gradient comparison covers every clamp's mask."""
    bound = torch.zeros(4, dtype=torch.long)
    for seed, scale, absent, two_view, *_ in CASES:
        u, v, index, logits, labels = _case(seed, scale, absent, two_view)
        onehot = torch.nn.functional.one_hot(labels, C).double()
        u_raw, v_raw = u[index] ** 2 * onehot, v[index] ** 2 * (1 - onehot)
        shifted = torch.softmax(logits[:B], dim=1) + u_raw.clamp(0, 1) - v_raw.clamp(0, 1)
        floored = shifted.clamp(min=sop.EPS)
        scaled = floored / floored.sum(dim=1, keepdim=True)
        bound += torch.stack([(u_raw > 1).sum(), (v_raw > 1).sum(), (shifted < sop.EPS).sum(),
                              (scaled < sop.EPS).sum()])
    assert (bound > 0).all(), bound


def test_u_gradient_stops_beyond_the_clamp_and_v_learns_only_from_the_squared_term() -> None:
    u, v, index, logits, labels = _case(0, 3.0, (), False)
    u[index[:4]] = 1.5  # u^2 > 1: U is clamped to 1, no gradient reaches u
    _, _, grad_u, grad_v = _grads(lambda z, uu, vv: sop.sop_loss(index, z, labels, uu, vv), logits, u, v)
    assert torch.equal(grad_u[index[:4]], torch.zeros(4, 1, dtype=torch.float64))
    # without the squared term's V, v would get no gradient: d/dv of the MSE only
    onehot = torch.nn.functional.one_hot(labels, C).double()
    v_sq = (v[index] ** 2 * (1 - onehot))
    inside = (v_sq > 0) & (v_sq < 1)
    hard = torch.nn.functional.one_hot(logits.argmax(1), C).double()
    u_sq = (u[index] ** 2 * onehot).clamp(0, 1)
    expected = -2 * (hard + u_sq - v_sq.clamp(0, 1) - onehot) * 2 * v[index] * (1 - onehot) * inside / B
    torch.testing.assert_close(grad_v[index], expected, **F64)


@pytest.mark.parametrize(("two_view", "lam_c", "lam_b"), [(False, 0.0, 0.0), (True, 0.9, 0.1)])
def test_uv_steps_replay_the_official_sgd_over_several_steps(two_view: bool, lam_c: float, lam_b: float) -> None:
    """Three calls on one state: loss, gradients, then the whole u and v after each step, against torch's SGD with
    the official groups (float64), and float32 against float64."""
    u0, v0, _, _, _ = _case(10, 3.0, (), two_view)
    ours64 = [t.clone().requires_grad_(True) for t in (u0, v0)]
    ours32 = [t.float().requires_grad_(True) for t in (u0, v0)]
    ref = [torch.nn.Parameter(t.clone()) for t in (u0, v0)]
    ref_opt = ref_sop_optimizer(*ref, lr_u=10.0, lr_v=10.0)
    for step in range(3):
        _, _, index, logits, labels = _case(20 + step, 3.0 if step else 100.0, (step,), two_view)
        for (uu, vv), z in ((ours64, logits), (ours32, logits.float())):
            uu.grad = vv.grad = None
            sop.sop_loss(index, z, labels, uu, vv, ratio_consistency=lam_c, ratio_balance=lam_b).backward()
            sop.sop_uv_step(uu, vv, 10.0, 10.0)
        ref_opt.zero_grad()
        ref_sop_loss(index, logits, labels, *ref, C, lam_c, lam_b).backward()
        ref_opt.step()
        for ours, theirs in zip(ours64, ref):
            torch.testing.assert_close(ours.grad, theirs.grad, **F64)
            torch.testing.assert_close(ours.detach(), theirs.detach(), **F64)
        for low, high in zip(ours32, ours64):
            torch.testing.assert_close(low.detach().double(), high.detach(), **F32)
        assert not torch.equal(ours64[1].detach(), v0)


def test_uv_step_leaves_a_tensor_without_gradient_and_the_gradients_alone() -> None:
    u, v = torch.ones(3, 1, requires_grad=True), torch.ones(3, 2, requires_grad=True)
    u.grad = torch.full((3, 1), 0.5)
    sop.sop_uv_step(u, v, 2.0, 100.0)
    assert torch.equal(u.detach(), torch.zeros(3, 1)) and torch.equal(v.detach(), torch.ones(3, 2))
    assert torch.equal(u.grad, torch.full((3, 1), 0.5))


def test_consistency_is_the_official_kl_with_a_detached_target() -> None:
    _, _, _, logits, _ = _case(3, 3.0, (), True)
    first, second = logits[:B], logits[B:]
    torch.testing.assert_close(sop.sop_consistency(first, second), ref_sop_consistency(first, second), **F64)
    p, log_q = torch.softmax(first, 1), torch.log_softmax(second, 1)
    torch.testing.assert_close(sop.sop_consistency(first, second), (p * (p.log() - log_q)).sum(1), **F64)
    z1, z2 = first.clone().requires_grad_(True), second.clone().requires_grad_(True)
    sop.sop_consistency(z1, z2).sum().backward()
    assert z1.grad is None or torch.equal(z1.grad, torch.zeros_like(z1))
    low = sop.sop_consistency(first.float() * 30, second.float() * 30)  # scale 100
    torch.testing.assert_close(low.double(), sop.sop_consistency(first * 30, second * 30), **F32)


def test_sop_loss_refuses_other_row_counts() -> None:
    u, v, index, logits, labels = _case(0, 3.0, (), False)
    with pytest.raises(ValueError, match="expected 16 or 32"):
        sop.sop_loss(index, logits[:10], labels, u, v)


def test_label_estimate_is_y_minus_u_plus_v() -> None:
    u, v, _, _, _ = _case(0, 3.0, (), False)
    labels = torch.arange(N) % C
    onehot = torch.nn.functional.one_hot(labels, C).double()
    expected = onehot - (u ** 2 * onehot).clamp(0, 1) + (v ** 2 * (1 - onehot)).clamp(0, 1)
    torch.testing.assert_close(sop.sop_label_estimate(u, v, labels, C), expected, rtol=0, atol=0)


# ---------------------------------------------------------------------------- the method's use of them
def _context(n: int = 6, classes: int = 3, policies: tuple[str, ...] = ("weak",)) -> SimpleNamespace:
    net = torch.nn.Linear(4, classes)
    x, y = torch.randn(n, 4), torch.arange(n) % classes
    calls: list = []

    def augment(raw, policy=None):  # noqa: ANN001, ANN202
        if policy not in policies:
            raise ConfigError(f"dataset 'x' has no augmentation policy {policy!r}; its policies: weak")
        calls.append(policy)
        return raw + 1.0

    def optimize(loss, which=None, extra=()):  # noqa: ANN001, ANN202
        calls.append(("optimize", which, tuple(extra)))
        for opt in extra:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in extra:
            opt.step()

    return SimpleNamespace(
        nets=[net], num_train=n, num_classes=classes, device=torch.device("cpu"), y_noisy=y,
        generator=torch.Generator().manual_seed(0), augment=augment, optimize=optimize, calls=calls,
        train_batches=lambda: iter([batch(x, y, torch.arange(n))]), mean_loss=lambda: 0.0, x=x)


@pytest.mark.parametrize("name", ["sop", "sop-plus"])
def test_the_method_calls_the_reference_functions_and_steps_u_v_as_an_extra_optimiser(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = sop.SOP if name == "sop" else sop_plus.SOPPlus
    module = sop if name == "sop" else sop_plus
    seen: list = []
    original_loss, original_step = sop.sop_loss, sop.sop_uv_step

    def loss_spy(index, logits, labels, u, v, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.append((len(index), len(logits), kw))
        return original_loss(index, logits, labels, u, v, **kw)

    def step_spy(u, v, lr_u, lr_v):  # noqa: ANN001, ANN202
        seen.append(("step", lr_u, lr_v))
        original_step(u, v, lr_u, lr_v)

    monkeypatch.setattr(module, "sop_loss", loss_spy)
    monkeypatch.setattr(sop, "sop_loss", loss_spy)
    monkeypatch.setattr(sop, "sop_uv_step", step_spy)
    method = cls(**{**cls.hparams, "lr_u": 3.0, "lr_v": 7.0, "init_std": 0.1})
    ctx = _context(policies=("weak", "strong"))
    method.setup(ctx)
    v_before = method.v.detach().clone()
    method.train_epoch(ctx, 0)
    if name == "sop":
        assert seen == [(6, 6, {}), ("step", 3.0, 7.0)]
    else:
        assert seen == [(6, 12, {"ratio_consistency": 0.9, "ratio_balance": 0.1}), ("step", 3.0, 7.0)]
        assert ctx.calls[0] == "strong" and method.policy == "strong"
    (_, which, extra), = [c for c in ctx.calls if isinstance(c, tuple)]
    assert which is None and extra == (method.uv_optimizer,)
    assert not torch.equal(method.v.detach(), v_before)


def test_sop_plus_resolves_auto_to_the_datasets_strongest_policy_and_forwards_one_view_without_consistency() -> None:
    for policies, expected in [(("weak", "strong"), "strong"), (("weak", "autoaugment-cutout16"),
                                                                 "autoaugment-cutout16"), (("weak",), "weak")]:
        method = sop_plus.SOPPlus(**sop_plus.SOPPlus.hparams)
        ctx = _context(policies=policies)
        method.setup(ctx)
        method.train_epoch(ctx, 0)
        assert method.policy == expected and ctx.calls[0] == expected
    method = sop_plus.SOPPlus(**{**sop_plus.SOPPlus.hparams, "ratio_consistency": 0.0})
    ctx = _context()
    method.setup(ctx)
    assert len(method.forward(ctx, batch(ctx.x, ctx.y_noisy, torch.arange(6)))) == 6


@pytest.mark.parametrize("name", ["sop", "sop-plus"])
def test_u_v_stay_out_of_the_trainers_optimisers_and_schedule_and_resume_exactly(name: str) -> None:
    seen: dict = {}

    class Spy(Trainer):
        def setup(self):  # noqa: ANN202
            seen["ctx"], seen["method"] = super().setup()
            return seen["ctx"], seen["method"]

    out = Spy(tiny_run(name, {"lr_u": 2.0, "lr_v": 5.0}, epochs=3)).run()
    method = seen["method"]
    trainer_params = {id(p) for opt in seen["ctx"].optimizers for g in opt.param_groups for p in g["params"]}
    assert id(method.u) not in trainer_params and id(method.v) not in trainer_params
    assert [g["lr"] for g in method.uv_optimizer.param_groups] == [2.0, 5.0]  # after 3 epochs of a cosine schedule
    assert method.u.dtype == method.v.dtype == torch.float32
    assert {"refined_acc", "refined_acc_noisy"} <= set(out["history"][-1])
    probe = Probe(name, {"lr_u": 2.0, "lr_v": 5.0})
    result = probe.resume(stop_after=2)
    assert result.ok, result.detail
    states = probe.straight().states
    assert {"u", "v"} <= set(states[2]) and not torch.equal(states[1]["v"], states[2]["v"])


def test_refined_targets_start_at_the_observed_labels() -> None:
    method = sop.SOP(**sop.SOP.hparams)
    ctx = _context()
    method.setup(ctx)
    targets = method.refined_targets()
    assert targets.shape == (6, 3) and torch.equal(targets.argmax(1), ctx.y_noisy)
    assert (targets - torch.nn.functional.one_hot(ctx.y_noisy, 3)).abs().max() < 1e-12


# ---------------------------------------------------------------------------- hyperparameters and recipes
def _hp(cls, **kw) -> dict:  # noqa: ANN001, ANN003
    return {k: (v.value, v.source) for k, v in cls.default_hparams(setting(**kw)).items()}


def test_defaults_per_family_and_noise() -> None:
    c10 = _hp(sop.SOP, dataset="cifar10", family="sym-dividemix", rate=0.5, num_classes=10, epochs=120)
    assert c10 == {"lr_u": (10.0, "paper"), "lr_v": (10.0, "paper"), "init_std": (1e-8, "paper-default")}
    c100 = _hp(sop.SOP, dataset="cifar100", family="asym-pairswap5", rate=0.4, num_classes=100, epochs=150)
    assert (c100["lr_u"], c100["lr_v"]) == ((1.0, "paper-default"), (10.0, "paper-default"))
    quick = _hp(sop.SOP, dataset="mnist1d", family="sym", rate=0.5, num_classes=10, epochs=30, protocol="shared")
    assert quick["lr_u"] == (10.0, "suite")
    plus = _hp(sop_plus.SOPPlus, dataset="cifar100", family="sym-dividemix", rate=0.5, num_classes=100, epochs=300)
    assert plus["lr_u"] == (1.0, "paper") and plus["lr_v"] == (10.0, "paper")
    assert plus["ratio_consistency"] == (0.9, "paper") and plus["ratio_balance"] == (0.1, "paper")
    assert plus["strong_policy"] == ("autoaugment-cutout16-c10stats", "paper")
    asym = _hp(sop_plus.SOPPlus, dataset="cifar100", family="asym-pairswap5", rate=0.4, num_classes=100, epochs=300)
    assert (asym["lr_u"], asym["lr_v"]) == ((0.1, "paper"), (100.0, "paper"))
    other_map = _hp(sop_plus.SOPPlus, dataset="cifar100", family="asym", rate=0.4, num_classes=100, epochs=300)
    assert other_map["lr_u"] == (0.1, "paper-default")
    shared = _hp(sop_plus.SOPPlus, dataset="cifar100", family="sym", rate=0.5, num_classes=100, epochs=120,
                 protocol="shared")
    assert shared["strong_policy"] == ("autoaugment-cutout16", "suite")
    c10n = _hp(sop_plus.SOPPlus, dataset="cifar10n", family="human", rate=None, num_classes=10, epochs=300,
               noise_arg="worst")
    assert c10n["lr_u"] == (10.0, "paper") and c10n["strong_policy"] == ("autoaugment-cutout16", "paper")
    c100n = _hp(sop_plus.SOPPlus, dataset="cifar100n", family="human", rate=None, num_classes=100, epochs=300,
                noise_arg="noisy")
    assert (c100n["lr_u"], c100n["lr_v"]) == ((1.0, "paper"), (10.0, "paper"))
    digits = _hp(sop_plus.SOPPlus, dataset="digits", family="sym", rate=0.5, num_classes=10, epochs=40,
                 protocol="shared")
    assert digits["strong_policy"] == ("auto", "suite") and digits["ratio_consistency"] == (0.9, "paper-default")


@pytest.mark.parametrize(("cls", "bad", "match"), [
    (sop.SOP, {"lr_u": -1.0}, "lr_u"), (sop.SOP, {"lr_v": math.inf}, "lr_v"), (sop.SOP, {"init_std": True}, "init"),
    (sop_plus.SOPPlus, {"ratio_balance": -0.1}, "ratio_balance"),
    (sop_plus.SOPPlus, {"ratio_consistency": "x"}, "ratio_consistency"),
    (sop_plus.SOPPlus, {"strong_policy": ""}, "strong_policy")])
def test_check_hparams_refuses(cls, bad: dict, match: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=match):
        cls.check_hparams({**cls.hparams, **bad})


def test_search_space_points_pass_the_checks() -> None:
    for cls in (sop.SOP, sop_plus.SOPPlus):
        space = cls.search_space(setting("cifar10", "sym", 0.4, 10, 120))
        assert isinstance(space["lr_u"], LogUniform) and space["lr_u"].source == "suite"
        for u in (0.0, 0.5, 1.0):
            cls.check_hparams({**cls.hparams, **{k: d.value_at(u) for k, d in space.items()}})


def test_plan_shows_each_methods_own_recipe_tagged_paper() -> None:
    runs = expand_grid(Grid(name="p", datasets=["cifar10", "cifar100"], methods=["sop", "sop-plus"],
                            noise=["sym-dividemix:0.5"], seeds=[1], train={"protocol": "paper"}))
    by = {(r.method, r.dataset.name): r for r in runs}
    for dataset, epochs in (("cifar10", 120), ("cifar100", 150)):
        run = by[("sop", dataset)]
        assert (run.train.arch, run.train.epochs, run.train.lr, run.train.weight_decay, run.train.schedule,
                run.train.milestones, run.train.val_fraction) == ("resnet34", epochs, 0.02, 5e-4, "step", [40, 80], 0.0)
        assert all(run.train_sources[k] == "paper" for k in sop.SOP.paper_recipes[sop.CIFAR_10])
        assert "hyperparameters34.tex" in run.train_refs["epochs"]
    for dataset in ("cifar10", "cifar100"):
        run = by[("sop-plus", dataset)]
        assert (run.train.arch, run.train.epochs, run.train.weight_decay, run.train.schedule, run.train.eta_min,
                run.train.val_fraction) == ("preact_resnet18", 300, 1e-3, "cosine", 0.0002, 0.0)
        assert all(run.train_sources[k] == "paper" for k in sop_plus.SOPPlus.paper_recipes[sop.CIFAR_100])
        assert "official CIFAR-100 config" in run.train_refs["weight_decay"]
        cosine = 0.0002 + (0.02 - 0.0002) * (1 + math.cos(math.pi * 299 / 300)) / 2
        assert lr_at(run.train, 299) == pytest.approx(cosine)
    assert by[("sop-plus", "cifar100")].hparams["strong_policy"] == "autoaugment-cutout16-c10stats"
    assert by[("sop-plus", "cifar10")].hparams["strong_policy"] == "autoaugment-cutout16"
    human = expand_grid(Grid(name="p", datasets=["cifar100n"], methods=["sop-plus"], noise=["human:noisy"], seeds=[1],
                             train={"protocol": "paper"}))[0]
    assert (human.train.weight_decay, human.train.epochs, human.hparams["lr_u"]) == (5e-4, 300, 1.0)


def test_reference_functions_and_the_plan_statements() -> None:
    assert sop.REFERENCE_FUNCTIONS == (sop.sop_loss, sop.sop_consistency, sop.sop_uv_step)
    assert sop_plus.REFERENCE_FUNCTIONS == sop.REFERENCE_FUNCTIONS
    assert any("no schedule" in r for r in sop.SOP.reproduced)
    assert any("CIFAR-10's channel statistics" in r for r in sop_plus.SOPPlus.reproduced)
    assert sop_plus.SOPPlus.relative_cost == 1.7 and sop.SOP.relative_cost == 1.0


def test_plan_prints_the_strong_view_statements_only_where_they_apply() -> None:
    cls = sop_plus.SOPPlus
    assert cls.deviations[cls.OWN_STATS].startswith("Under the shared protocol CIFAR-100")
    assert "strong_policy 'auto'" in cls.deviations[cls.AUTO_VIEW]
    assert cls.deviations_for({"strong_policy": "autoaugment-cutout16-c10stats"}) == sop.SOP.deviations
    assert cls.deviations_for({"strong_policy": "auto"}) == (*sop.SOP.deviations, cls.deviations[cls.AUTO_VIEW])
    assert cls.deviations_for({"strong_policy": "autoaugment-cutout16"})[-1] == cls.deviations[cls.OWN_STATS]
