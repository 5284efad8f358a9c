"""The shared trainer: determinism, resume after an interruption, NaN failures, data split."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from noisybench.config import TrainConfig, load_grid
from noisybench.data.prepare import prepare_data
from noisybench.errors import NonFiniteLossError
from noisybench.method import Method
from noisybench.plan import expand_grid
from noisybench.registry import METHODS
from noisybench.store import Checkpoint
from noisybench.trainer import Trainer, lr_at


@pytest.fixture
def runs(grid_file):
    return expand_grid(load_grid(grid_file()))


def test_same_seed_same_metrics(runs) -> None:
    a, b = Trainer(runs[0]).run(), Trainer(runs[0]).run()
    timing = a["metrics"].pop("train_time"), b["metrics"].pop("train_time")
    assert a["metrics"] == b["metrics"] and min(timing) > 0
    assert [h["test_acc"] for h in a["history"]] == [h["test_acc"] for h in b["history"]]
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_history_and_metrics_are_complete(runs) -> None:
    out = Trainer(runs[0]).run()
    assert len(out["history"]) == 3
    for row in out["history"]:
        assert {"epoch", "lr", "train_loss", "val_acc", "test_acc", "epoch_time"} <= set(row)
    m = out["metrics"]
    assert {"val_selected", "last", "mean_last_k", "best_on_test"} <= set(m)
    assert m["last"] == out["history"][-1]["test_acc"]
    assert m["best_on_test"] == max(h["test_acc"] for h in out["history"])


def test_exact_counts_sit_beside_unchanged_percentages(runs) -> None:
    out = Trainer(runs[0]).run()
    for row in out["history"]:
        correct, total = row["test_correct"], row["test_total"]
        assert isinstance(correct, int) and total > 0 and 0 <= correct <= total
        # the stored percent is still the float32 mean, bit for bit; the counts give its exact fraction
        expected = float((torch.arange(total) < correct).float().mean()) * 100.0
        assert row["test_acc"] == expected
    m = out["metrics"]
    last = out["history"][-1]
    assert (m["last_correct"], m["last_total"]) == (last["test_correct"], last["test_total"])
    chosen = out["history"][m["val_best_epoch"]]
    assert (m["val_selected_correct"], m["val_selected_total"]) == (chosen["test_correct"], chosen["test_total"])


def test_fit_to_noisy_and_clean_training_labels_is_recorded(runs) -> None:
    trainer = Trainer(runs[0])
    ctx, method = trainer.setup()
    row = trainer._run_epoch(ctx, method, 0)
    wrong = ctx.y_noisy != trainer._clean
    with ctx.eval_mode():
        hit = ctx.logits_on(lambda x: method.predict(ctx, x), ctx.data.x_train).argmax(1) == ctx.y_noisy
    assert row["train_fit_noisy"] == pytest.approx(float(hit[wrong].float().mean()) * 100.0)
    assert row["train_fit_clean"] == pytest.approx(float(hit[~wrong].float().mean()) * 100.0)


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_is_exact(runs, tmp_path: Path) -> None:
    config = runs[2]  # gce
    straight = Trainer(config).run()
    ckpt_path = tmp_path / "checkpoint.pt"
    ckpt = Checkpoint(ckpt_path)

    def stop_after_two(history):
        if len(history) == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        Trainer(config, checkpoint=ckpt, on_epoch=stop_after_two).run()
    assert ckpt_path.exists()
    resumed = Trainer(config, checkpoint=ckpt).run()
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2]
    assert [h["test_acc"] for h in resumed["history"]] == [h["test_acc"] for h in straight["history"]]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]


def test_checkpoint_of_another_run_is_ignored(runs, tmp_path: Path) -> None:
    ckpt_path = tmp_path / "checkpoint.pt"
    ckpt = Checkpoint(ckpt_path)
    Trainer(runs[0], checkpoint=ckpt).run()
    out = Trainer(runs[1], checkpoint=ckpt).run()
    assert len(out["history"]) == 3 and out["history"][0]["epoch"] == 0


def test_corrupt_checkpoint_starts_over_with_a_warning(runs, tmp_path: Path) -> None:
    ckpt_path = tmp_path / "checkpoint.pt"
    ckpt = Checkpoint(ckpt_path)
    ckpt_path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable checkpoint"):
        out = Trainer(runs[0], checkpoint=ckpt).run()
    assert len(out["history"]) == 3


class _NanMethod(Method):
    name = "test-nan"

    def training_step(self, ctx, batch, epoch):
        return ctx.nets[0](batch.x).sum() * float("nan")


def test_non_finite_loss_fails_the_run(runs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(METHODS._items, "test-nan", _NanMethod)
    config = replace(runs[0], method="test-nan", hparams={})
    with pytest.raises(NonFiniteLossError, match="training loss became nan in epoch 0"):
        Trainer(config).run()


def test_val_split_is_noisy_stratified_and_identical_for_all_methods(runs) -> None:
    ce = next(r for r in runs if r.method == "ce" and r.seed == 1)
    gce = next(r for r in runs if r.method == "gce" and r.seed == 1)
    _, a = prepare_data(ce.dataset.name, ce.dataset.params, ce.noise, ce.seed)
    _, b = prepare_data(gce.dataset.name, gce.dataset.params, gce.noise, gce.seed)
    assert np.array_equal(a.val_index, b.val_index) and torch.equal(a.y_train, b.y_train)
    assert a.noise.sha256 == b.noise.sha256
    n_total = len(a.train_index) + len(a.val_index)
    assert len(a.val_index) == pytest.approx(0.1 * n_total, abs=4)
    assert not set(a.train_index) & set(a.val_index)
    noisy_val = (a.y_val.numpy() != a.noise.labels[a.val_index]).sum()
    assert noisy_val == 0  # val labels are the noisy labels
    clean = prepare_data(ce.dataset.name, ce.dataset.params, ce.noise, ce.seed)[1]
    assert (clean.y_train != clean.y_train_clean).float().mean().item() == pytest.approx(0.2, abs=0.05)


def test_lr_schedules() -> None:
    cos = TrainConfig(epochs=10, lr=0.1, schedule="cosine")
    assert lr_at(cos, 0) == pytest.approx(0.1) and lr_at(cos, 5) == pytest.approx(0.05)
    step = TrainConfig(epochs=10, lr=0.1, schedule="step", milestones=[3, 6], gamma=0.1)
    assert [round(lr_at(step, e), 6) for e in (0, 3, 6)] == [0.1, 0.01, 0.001]


class _CountingCheckpoint:
    """A checkpoint that remembers after how many epochs each save happened."""

    def __init__(self) -> None:
        self.saved_after: list[int] = []

    def save(self, state: dict) -> None:
        self.saved_after.append(len(state["history"]))

    def load(self, map_location: object = "cpu") -> None:
        return None


@pytest.mark.parametrize(("every", "requested", "expected"), [
    (0.0, False, [1, 2]),        # every epoch but the last (the result follows it)
    (3600.0, False, []),         # not due within a run of seconds
    (3600.0, True, [1, 2]),      # a stop request saves at once
])
def test_checkpoints_follow_the_interval_and_requests(runs, every: float, requested: bool, expected: list) -> None:
    checkpoint = _CountingCheckpoint()
    saves: list[int] = []
    epochs: list[int] = []
    out = Trainer(runs[0], checkpoint=checkpoint, checkpoint_every=every, save_requested=lambda: requested,
                  on_save=lambda h: saves.append(len(h)), on_epoch=lambda h: epochs.append(len(h))).run()
    assert len(out["history"]) == 3
    assert checkpoint.saved_after == expected and saves == expected
    assert epochs == [1, 2, 3]


def test_cpu_evaluation_chunks_leave_every_logit_unchanged(runs, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU the trainer evaluates in chunks of CPU_EVAL_ROWS; eval-mode logits do not depend on the chunk."""
    from noisybench.archs import create_model

    ctx, _ = Trainer(runs[0]).setup()
    x = torch.randn(3000, 40)
    for arch in ("mlp", "cnn1d"):
        torch.manual_seed(0)
        net = create_model(arch, (40,), 10)
        with ctx.eval_mode([net]):
            monkeypatch.setattr("noisybench.context.CPU_EVAL_ROWS", 10**9)
            whole = ctx.logits_on(net, x)  # the recipe's eval_batch_size
            monkeypatch.setattr("noisybench.context.CPU_EVAL_ROWS", 1024)
            chunked = ctx.logits_on(net, x)
        assert torch.equal(whole.view(torch.int32), chunked.view(torch.int32)), arch
