"""The contract's extensions, through the trainer: own optimisers, clipping, per-step decay, phases, frozen layer
groups, extra heads and predictions, the setup generator, and exact resume with each (noisybench.context)."""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from noisybench.config import Grid, RunConfig
from noisybench.conformance import first_difference, observe, stable
from noisybench.method import HParam, Method
from noisybench.plan import expand_grid
from noisybench.registry import METHODS
from noisybench.schedules import lr_at
from noisybench.store import ResultStore
from noisybench.trainer import Trainer, accuracy

EPOCHS = 4


def config(method: str, seed: int = 1, hparams: dict[str, Any] | None = None, **train: Any) -> RunConfig:
    grid = Grid(name="ext", datasets=["blobs"], methods=[method], noise=["sym:0.4"], seeds=[seed],
                train={"epochs": EPOCHS, "device": "cpu", **train}, method_params={method: hparams} if hparams else {},
                dataset_params={"blobs": {"n_samples": 300, "dim": 8, "classes": 4}}, source="test")
    return expand_grid(grid)[0]


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch):
    METHODS.list()
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    monkeypatch.setattr(METHODS, "_origins", dict(METHODS._origins))

    def add(cls: type[Method]) -> str:
        METHODS.add(cls.name, cls, force=True)
        return cls.name

    return add


def resumed_equals_straight(run: RunConfig, stop_after: int) -> tuple[Any, Any]:
    """Stop after ``stop_after`` epochs, resume in a fresh trainer; both histories and final method states."""
    straight = observe(run)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = ResultStore(folder).checkpoint(run.run_id)
        observe(run, checkpoint, stop_after=stop_after)
        resumed = observe(run, checkpoint)
    assert sorted(resumed.states) == list(range(stop_after, EPOCHS))
    assert first_difference(stable(straight.out["history"]), stable(resumed.out["history"])) == ""
    for epoch in resumed.states:
        for name, value in straight.states[epoch].items():
            other = resumed.states[epoch][name]
            assert (torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other), name
    return straight, resumed


class Captured(Trainer):
    """A trainer that keeps its context and method for inspection."""

    def setup(self) -> Any:
        self.ctx, self.method = super().setup()
        return self.ctx, self.method


# ------------------------------------------------------------------ a method's own parameters and optimiser
class OwnParameters(Method):
    """Per-sample logit offsets u with their own optimiser (SOP's u, v pattern)."""

    name = "test-own"
    hparams = {"lr_u": 0.5, "adam": False}

    def setup(self, ctx: Any) -> None:
        self.u = torch.zeros(ctx.num_train, ctx.num_classes, requires_grad=True)
        self.opt = (torch.optim.Adam([self.u], lr=self.hp["lr_u"]) if self.hp["adam"]
                    else torch.optim.SGD([self.u], lr=self.hp["lr_u"]))

    def train_epoch(self, ctx: Any, epoch: int) -> dict[str, float]:
        for batch in ctx.train_batches():
            loss = F.cross_entropy(ctx.nets[0](batch.x) + self.u[batch.index], batch.y)
            ctx.optimize(loss, extra=[self.opt])
        return {"train_loss": ctx.mean_loss()}

    def state_dict(self) -> dict[str, Any]:
        return {"u": self.u.detach().clone(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.u.copy_(state["u"])
        self.opt.load_state_dict(state["opt"])


def test_own_sgd_through_the_trainer_equals_a_hand_written_loop(register) -> None:
    run = config(register(OwnParameters))
    trainer = Captured(run)
    trainer.run()
    reference = Trainer(run)
    ctx, _ = reference.setup()  # same data, same initial network
    net, opt = ctx.nets[0], ctx.optimizers[0]
    u = torch.zeros(ctx.num_train, ctx.num_classes, requires_grad=True)
    opt_u = torch.optim.SGD([u], lr=0.5)
    for epoch in range(EPOCHS):
        for group in opt.param_groups:
            group["lr"] = lr_at(run.train, epoch)
        ctx.begin_epoch(epoch)
        net.train()
        for batch in ctx.train_batches():
            opt.zero_grad()
            opt_u.zero_grad()
            F.cross_entropy(net(batch.x) + u[batch.index], batch.y).backward()
            opt.step()
            opt_u.step()
    assert torch.equal(trainer.method.u, u) and bool(u.abs().sum() > 0)
    for a, b in zip(trainer.ctx.nets[0].parameters(), net.parameters()):
        assert torch.equal(a, b)
    assert trainer.method.opt.param_groups[0]["lr"] == 0.5  # the trainer never rewrites an extra optimiser's rate


def test_resume_is_exact_with_an_extra_adam(register) -> None:
    run = config(register(OwnParameters), hparams={"lr_u": 0.1, "adam": True})
    straight, _ = resumed_equals_straight(run, stop_after=2)
    assert straight.states[EPOCHS - 1]["u"].abs().sum() > 0


# ------------------------------------------------------------------ clipping and per-step decay
def test_clipping_inside_optimize_equals_clip_grad_norm(register) -> None:
    run = config("ce", grad_clip_norm=0.05)
    ctx, _ = Trainer(run).setup()
    ctx.begin_epoch(0)
    net, opt = ctx.nets[0], ctx.optimizers[0]
    twin, twin_opt = copy.deepcopy(net), None
    twin_opt = torch.optim.SGD(twin.parameters(), lr=opt.param_groups[0]["lr"], momentum=0.9, weight_decay=5e-4)
    for batch in list(ctx.train_batches(shuffle=False))[:3]:
        ctx.optimize(F.cross_entropy(net(batch.x), batch.y))
        twin_opt.zero_grad()
        F.cross_entropy(twin(batch.x), batch.y).backward()
        norm = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.05)
        assert float(norm) > 0.05  # clipping did something
        twin_opt.step()
    for a, b in zip(net.parameters(), twin.parameters()):
        assert torch.equal(a, b)


class RateRecorder(Method):
    """Three steps per epoch; records the rate each step ran at."""

    name = "test-rates"

    def setup(self, ctx: Any) -> None:
        self.rates: list[float] = []

    def train_epoch(self, ctx: Any, epoch: int) -> dict[str, float]:
        for batch in list(ctx.train_batches())[:3]:
            ctx.optimize(F.cross_entropy(ctx.nets[0](batch.x), batch.y))
            self.rates.append(ctx.optimizers[0].param_groups[0]["lr"])
        return {"train_loss": ctx.mean_loss()}

    def state_dict(self) -> dict[str, Any]:
        return {"rates": list(self.rates)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rates = list(state["rates"])


def test_keras_decay_through_the_trainer_and_its_exact_resume(register) -> None:
    run = config(register(RateRecorder), lr=0.1, schedule="step", milestones=[1, 2], gamma=0.1,
                 lr_decay_per_step=5e-3, batch_size=32)
    straight, resumed = resumed_equals_straight(run, stop_after=2)
    plan = [0.1, 0.01, 0.001, 0.001]
    expected = [plan[t // 3] / (1 + 5e-3 * t) for t in range(3 * EPOCHS)]
    assert straight.method.rates == pytest.approx(expected, rel=1e-14)
    assert resumed.method.rates == straight.method.rates  # the step counter survived the checkpoint


def test_without_per_step_terms_the_rate_is_set_once_per_epoch(register) -> None:
    straight = observe(config(register(RateRecorder), batch_size=32))
    rates = straight.method.rates
    assert all(len(set(rates[3 * e : 3 * e + 3])) == 1 for e in range(EPOCHS))


# ------------------------------------------------------------------ frozen layer groups
class Freezer(Method):
    """After epoch 0: re-initialise the classifier group, freeze every other group (PES's refinement pattern)."""

    name = "test-freeze"

    def setup(self, ctx: Any) -> None:
        self.net, self.frozen = ctx.nets[0], False

    def training_step(self, ctx: Any, batch: Any, epoch: int) -> torch.Tensor:
        return F.cross_entropy(ctx.nets[0](batch.x), batch.y)

    def end_epoch(self, ctx: Any, epoch: int) -> dict[str, float]:
        if epoch == 0:
            for module in self.net.layer_groups()[-1].modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()  # the global generator, reseeded every epoch
            self.frozen = True
            self._apply()
        return {}

    def _apply(self) -> None:
        for group in self.net.layer_groups()[:-1]:
            for p in group.parameters():
                p.requires_grad_(not self.frozen)

    def state_dict(self) -> dict[str, Any]:
        return {"frozen": self.frozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.frozen = state["frozen"]
        self._apply()  # requires_grad flags are not in checkpoints


def test_resume_is_exact_with_a_frozen_layer_group(register) -> None:
    straight, _ = resumed_equals_straight(config(register(Freezer)), stop_after=2)
    first, last = straight.states[1], straight.states[EPOCHS - 1]
    body = [k for k in first if k.startswith("net.1.")]  # the hidden layer (frozen from epoch 1)
    head = [k for k in first if k.startswith("net.4.")]  # the classifier
    assert body and head
    assert all(torch.equal(first[k], last[k]) for k in body)
    assert not all(torch.equal(first[k], last[k]) for k in head)


# ------------------------------------------------------------------ phases
class Phased(Method):
    """Cross-entropy scaled by (1 + phase), set in begin_phase."""

    name = "test-phases"

    def setup(self, ctx: Any) -> None:
        self.scale, self.calls = 0.0, []

    def begin_phase(self, ctx: Any, phase: int) -> None:  # draws from the epoch's streams: exact on resume too
        self.scale = 1.0 + phase + float(torch.rand(1, generator=ctx.generator)) + float(torch.rand(1))
        self.calls.append(phase * 100 + ctx.phase)

    def training_step(self, ctx: Any, batch: Any, epoch: int) -> torch.Tensor:
        return self.scale * F.cross_entropy(ctx.nets[0](batch.x), batch.y)

    def end_epoch(self, ctx: Any, epoch: int) -> dict[str, float]:
        return {"phase": float(ctx.phase), "adam": float(isinstance(ctx.optimizers[0], torch.optim.Adam))}

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "calls": list(self.calls)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.calls = state["scale"], list(state["calls"])


PHASES = [{"epochs": 2, "momentum": 0.0, "weight_decay": 0.0, "schedule": "step", "milestones": [1], "gamma": 0.1},
          {"epochs": 2, "optimizer": "adam", "lr": 1e-3, "schedule": "constant", "grad_clip_norm": 1.0}]


@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_resume_is_exact_across_a_phase_boundary(register, stop_after: int) -> None:
    run = config(register(Phased), lr=0.1, phases=PHASES)
    straight, resumed = resumed_equals_straight(run, stop_after=stop_after)
    history = straight.out["history"]
    assert [h["phase"] for h in history] == [0, 0, 1, 1] and [h["adam"] for h in history] == [0, 0, 1, 1]
    assert [h["lr"] for h in history] == pytest.approx([0.1, 0.01, 1e-3, 1e-3])
    assert straight.method.calls == [0, 101] == resumed.method.calls


# ------------------------------------------------------------------ extra heads, extra predictions
class WithHead(nn.Module):
    """A network plus a second head like its classifier, trained on the same features."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.head = copy.deepcopy(net.layer_groups()[-1])
        for module in self.head.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: torch.Tensor, heads: bool = False) -> Any:
        logits, feats = self.net(x, features=True)
        return (logits, self.head(feats)) if heads else logits


class TwoHeads(Method):
    name = "test-heads"

    def extend_network(self, net: nn.Module, k: int) -> nn.Module:
        return WithHead(net)

    def setup(self, ctx: Any) -> None:
        self.seen = (ctx.epochs, torch.randn(3, generator=ctx.generator), float(ctx.rng.random()))

    def training_step(self, ctx: Any, batch: Any, epoch: int) -> torch.Tensor:
        main, extra = ctx.nets[0](batch.x, heads=True)
        return F.cross_entropy(main, batch.y) + F.cross_entropy(extra, batch.y)

    def predict_heads(self, ctx: Any, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pseudo": ctx.nets[0](x, heads=True)[1]}

    def end_epoch(self, ctx: Any, epoch: int) -> dict[str, float]:
        return {"seen_lr": ctx.lr, "seen_epochs": float(ctx.epochs)}


def test_an_extra_head_trains_under_the_recipe_and_is_scored(register) -> None:
    run = config(register(TwoHeads))
    trainer = Captured(run)
    torch.manual_seed(run.seed)
    out = trainer.run()
    net = trainer.ctx.nets[0]
    in_optimizer = {id(p) for g in trainer.ctx.optimizers[0].param_groups for p in g["params"]}
    assert all(id(p) in in_optimizer for p in net.head.parameters())
    with trainer.ctx.eval_mode():
        pseudo = trainer.ctx.logits_on(lambda x: net(x, heads=True)[1], trainer.ctx.data.x_test)
    last = out["history"][-1]
    assert last["test_acc_pseudo"] == accuracy(pseudo, trainer.ctx.data.y_test) and last["test_acc_pseudo"] > 40
    assert "test_acc_pseudo" not in out["metrics"]  # the headline metrics stay predict's
    assert [h["seen_lr"] for h in out["history"]] == [h["lr"] for h in out["history"]]
    assert {h["seen_epochs"] for h in out["history"]} == {EPOCHS}


def test_extending_a_network_leaves_its_initial_weights_alone(register) -> None:
    a, _ = Trainer(config("ce")).setup()
    b, _ = Trainer(config(register(TwoHeads))).setup()
    for p, q in zip(a.nets[0].parameters(), b.nets[0].net.parameters()):
        assert torch.equal(p, q)


def test_setup_draws_are_seeded_by_the_run(register) -> None:
    name = register(TwoHeads)
    first = Trainer(config(name)).setup()[1].seen
    again = Trainer(config(name)).setup()[1].seen
    other = Trainer(config(name, seed=2)).setup()[1].seen
    assert torch.equal(first[1], again[1]) and first[2] == again[2] and first[0] == EPOCHS
    assert not torch.equal(first[1], other[1]) and first[2] != other[2]


# ------------------------------------------------------------------ hyperparameters added later
class Grown(Method):
    name = "test-grown"
    hparams = {"a": 1.0, "new": 0.0}
    id_neutral_hparams = {"new": 0.0}

    @classmethod
    def default_hparams(cls, setting: Any) -> dict[str, HParam]:
        return {k: HParam(v, "suite") for k, v in cls.hparams.items()}

    def training_step(self, ctx: Any, batch: Any, epoch: int) -> torch.Tensor:
        return F.cross_entropy(ctx.nets[0](batch.x), batch.y) * (1 + self.hp["new"])


def test_a_hyperparameter_added_later_keeps_old_run_ids_at_its_neutral_value(register) -> None:
    run = config(register(Grown))
    assert run.hparams == {"a": 1.0, "new": 0.0} and run.neutral_hparams == {"new": 0.0}
    before = dataclasses.replace(run, hparams={"a": 1.0}, neutral_hparams={})  # the id before "new" existed
    assert run.run_id == before.run_id
    changed = dataclasses.replace(run, hparams={"a": 1.0, "new": 0.5})
    assert changed.run_id != run.run_id
    assert RunConfig.from_dict(run.to_dict()).run_id == run.run_id  # stored and read back


def test_extra_outputs_come_back_as_float32_under_mixed_precision(register) -> None:
    run = config(register(TwoHeads), amp=True, epochs=1)
    trainer = Captured(run)
    out = trainer.run()
    assert out["runtime"]["precision"] == "bf16" and "test_acc_pseudo" in out["history"][0]
    main, extra = trainer.ctx.nets[0](trainer.ctx.prepare(trainer.ctx.data.x_test[:4]), heads=True)
    assert main.dtype == extra.dtype == torch.float32


class BetaRecorder(Method):
    name = "test-betas"

    def training_step(self, ctx: Any, batch: Any, epoch: int) -> torch.Tensor:
        return F.cross_entropy(ctx.nets[0](batch.x), batch.y)

    def end_epoch(self, ctx: Any, epoch: int) -> dict[str, float]:
        return {"beta1": ctx.optimizers[0].param_groups[0]["betas"][0]}


def test_the_trainer_switches_adams_beta1_with_the_linear_tail(register) -> None:
    run = config(register(BetaRecorder), optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="linear-tail",
                 milestones=[2], adam_beta1_tail=0.1)
    history = Trainer(run).run()["history"]
    assert [h["beta1"] for h in history] == [0.9, 0.9, 0.1, 0.1]
    assert [h["lr"] for h in history] == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4])
