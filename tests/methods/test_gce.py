"""GCE's L_q against the spec's derived golden values (methods.md §4)."""

from __future__ import annotations

import math

import pytest
import torch

from noisybench.methods.gce import GCE, gce_loss, truncated_gce_loss
from tests.methods._helpers import FixedLogits, batch


@pytest.mark.parametrize(("p_y", "expected"), [(0.10, 1.143534), (0.50, 0.549183), (0.90, 0.101569),
                                               (0.99, 0.010015)])
def test_golden_values_q07(p_y: float, expected: float) -> None:
    logits = torch.tensor([[math.log(p_y), math.log(1 - p_y)]], dtype=torch.float64)
    assert float(gce_loss(logits, torch.tensor([0]), 0.7)) == pytest.approx(expected, abs=1e-6)


def test_q1_is_mae_and_small_q_tends_to_ce() -> None:
    logits = torch.tensor([[1.0, -0.5, 0.3]], dtype=torch.float64)
    p = torch.softmax(logits, dim=1)[0]
    assert float(gce_loss(logits, torch.tensor([0]), 1.0)) == pytest.approx(1 - float(p[0]), abs=1e-12)
    assert float(gce_loss(logits, torch.tensor([0]), 1e-6)) == pytest.approx(-math.log(float(p[0])), abs=1e-5)


# ------------------------------------------------------------------ truncated L_q: the prune schedule
class _Ctx:
    """Just what GCE's hooks read: one FixedLogits 'network' over N samples, one batch per epoch."""

    def __init__(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.nets = [FixedLogits(logits)]
        self.num_train, self.num_classes = len(y), logits.shape[1]
        self.device, self.y_noisy = torch.device("cpu"), y
        self.last_val_acc = float("nan")
        self.seen_weights: list[torch.Tensor] = []
        self.losses: list[float] = []

    def train_batches(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        index = torch.arange(self.num_train)
        yield batch(index.float()[:, None], self.y_noisy, index)

    def optimize(self, loss: torch.Tensor, which=None) -> None:  # noqa: ANN001
        self.losses.append(float(loss.detach()))
        with torch.no_grad():
            self.nets[0].table.add_(1.0)  # any change: the current net differs from the best checkpoint

    def mean_loss(self) -> float:
        return self.losses[-1]

    def predict_train(self, net: torch.nn.Module, indices=None) -> torch.Tensor:  # noqa: ANN001
        return net(torch.arange(self.num_train).float()[:, None]).detach()


def _truncated(**hp: object) -> GCE:
    return GCE(**{**GCE.hparams, "truncated": True, "q": 0.7, "k": 0.5, **hp})


def test_prune_runs_at_the_start_of_the_epoch_from_the_strictly_best_checkpoint() -> None:
    y = torch.tensor([0, 0, 0, 0])
    first = torch.tensor([[3.0, 0.0], [3.0, 0.0], [-3.0, 0.0], [-3.0, 0.0]])  # p_y > k for samples 0, 1
    ctx = _Ctx(first, y)
    method = _truncated(start_prune=3, prune_every=3)
    method.setup(ctx)
    method.train_epoch(ctx, 0)
    with torch.no_grad():
        ctx.nets[0].table.copy_(first)
    ctx.last_val_acc = 0.5
    method.end_epoch(ctx, 0)  # best so far: `first`
    method.train_epoch(ctx, 1)
    with torch.no_grad():
        ctx.nets[0].table.copy_(-first)  # a different model with the SAME val accuracy: a tie keeps `first`
    method.end_epoch(ctx, 1)
    assert torch.equal(method.weights, torch.ones(4))  # no prune yet: (e + 1) = 2 < start_prune
    stats = method.train_epoch(ctx, 2)  # (e + 1) = 3: prune before epoch 2 trains, from `first`
    assert method.weights.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert stats["kept_frac"] == 0.5 and stats["prune_skipped"] == 0.0
    # the epoch's loss already uses the new weights: mean(w L_q - L_q(k) w) over the trained logits
    trained = -first  # what the net held when epoch 2 started
    expected = truncated_gce_loss(trained, y, method.weights, 0.7, 0.5)
    assert stats["train_loss"] == pytest.approx(float(expected), rel=1e-6)


def test_a_prune_that_would_keep_nothing_keeps_the_previous_weights() -> None:
    y = torch.tensor([0, 0, 1])
    hopeless = torch.tensor([[-5.0, 5.0], [-5.0, 5.0], [5.0, -5.0]])  # every p_y < k
    ctx = _Ctx(hopeless, y)
    method = _truncated(start_prune=1, prune_every=1)
    method.setup(ctx)
    method.weights = torch.tensor([1.0, 0.0, 1.0])
    ctx.last_val_acc = 0.2
    method.end_epoch(ctx, 0)
    stats = method.train_epoch(ctx, 1)
    assert stats["prune_skipped"] == 1.0 and method.weights.tolist() == [1.0, 0.0, 1.0]
    assert stats["kept_frac"] == pytest.approx(2 / 3)


def test_suite_prune_schedule_starts_at_the_first_lr_milestone() -> None:
    from tests.methods._helpers import setting

    shared = GCE.default_hparams(setting("cifar10", "sym", 0.4, 10, 60, paper_epochs=120, protocol="shared",
                                         milestones=(25, 45)))
    assert (shared["start_prune"].value, shared["prune_every"].value, shared["start_prune"].source) == (25, 5, "suite")
    cosine = GCE.default_hparams(setting("digits", "sym", 0.4, 10, 30, protocol="shared"))
    assert (cosine["start_prune"].value, cosine["prune_every"].value) == (10, 2)  # no milestone: a third
    paper = GCE.default_hparams(setting("cifar100", "sym", 0.4, 100, 150, paper_epochs=150))
    assert (paper["start_prune"].value, paper["prune_every"].value) == (80, 10)
    assert paper["start_prune"].source == "paper-default"


# ------------------------------------------------------------------ truncated L_q: the suite's deviations, pinned
def test_prune_epochs_train_the_network_and_prune_on_unaugmented_inputs_in_eval_mode() -> None:
    """Unlike the reference code (which trains a throw-away copy in its prune epochs, and prunes with augmented
    images), the suite's network learns in every epoch and its prune pass sees the test transform in eval mode."""
    from noisybench.config import Grid
    from noisybench.plan import expand_grid
    from noisybench.trainer import Trainer

    grid = Grid(name="t", datasets=["digits"], methods=["gce"], noise=["sym:0.4"], seeds=[1],
                train={"epochs": 4, "device": "cpu"},
                method_params={"gce": {"truncated": True, "start_prune": 2, "prune_every": 1}})
    trainer = Trainer(expand_grid(grid)[0])
    ctx, method = trainer.setup()
    augment_calls, prune_forwards = [0], []
    augment = ctx.dataset.augment
    ctx.dataset.augment = lambda raw, generator: (augment_calls.__setitem__(0, augment_calls[0] + 1),
                                                  augment(raw, generator))[1]
    in_prune = [False]
    ctx.nets[0].register_forward_pre_hook(
        lambda net, args: prune_forwards.append(net.training) if in_prune[0] else None)
    prune = method._prune

    def watched_prune(ctx_):  # noqa: ANN001, ANN202
        calls, in_prune[0] = augment_calls[0], True
        try:
            return prune(ctx_)
        finally:
            in_prune[0] = False
            assert augment_calls[0] == calls, "the prune pass drew augmented views"

    method._prune = watched_prune
    pruned_epochs = 0
    for epoch in range(4):
        before = [p.detach().clone() for p in ctx.nets[0].parameters()]
        row = trainer._run_epoch(ctx, method, epoch)
        if row.get("prune_skipped") == 0.0:
            pruned_epochs += 1
            after = list(ctx.nets[0].parameters())
            assert any(not torch.equal(a, b) for a, b in zip(after, before)), f"epoch {epoch} did not train"
    assert pruned_epochs >= 2  # epochs 1, 2 and 3 are prune epochs ((e + 1) >= 2)
    assert prune_forwards and not any(prune_forwards)  # every forward of the prune pass ran in eval mode


def test_plan_states_both_deviations_for_truncated_gce_only() -> None:
    from noisybench.config import Grid
    from noisybench.plan import expand_grid, render_plan

    def plan(truncated: bool) -> str:
        grid = Grid(name="t", datasets=["digits"], methods=["gce"], noise=["sym:0.4"], seeds=[1],
                    method_params={"gce": {"truncated": truncated}})
        return render_plan(expand_grid(grid))

    text = " ".join(plan(True).split())
    assert "does not train the network in its prune epochs" in text and "rebinds" in text
    assert "un-augmented training set in eval mode" in text
    assert "deviation" not in plan(False)
