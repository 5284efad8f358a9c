"""Every registered method, through the shared trainer: determinism, exact resume, complete records.

Parametrized over ``METHODS.list()`` (so a new plugin is checked automatically) plus the option
variants that change a method's control flow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from noisybench.registry import METHODS
from noisybench.store import Checkpoint
from noisybench.trainer import Trainer
from tests.methods._helpers import tiny_run

EPOCHS = 3
VARIANTS: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in METHODS.list()] + [
    ("gce", {"truncated": True, "start_prune": 1, "prune_every": 1}),
    ("alr", {"ema_granularity": "epoch", "warmup_end": 1}),
    ("alr", {"entropy_on": "targets", "entropy_threshold": 0.5, "warmup_end": 1}),
    ("alr", {"entropy_threshold": 0.5, "entropy_ramp": 1, "warmup_end": 1}),
    ("dividemix", {"loss_history": 3, "conf_penalty": True}),
    ("dividemix", {"mix_labelled_only": True, "lambda_u": 0.0}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in hp.items()) for name, hp in VARIANTS]
BASE_COLUMNS = {"epoch", "lr", "train_loss", "val_acc", "test_acc", "epoch_time", "peak_mem_mb"}
#: Agreed diagnostic columns, per method (and GCE only when truncated).
DIAGNOSTICS = {
    "elr": {"refined_acc", "refined_acc_noisy"},
    "alr": {"refined_acc", "refined_acc_noisy"},
    "dividemix": {"selected_frac", "select_precision", "select_recall"},
}
VOLATILE = {"epoch_time", "peak_mem_mb"}


def _stable(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in history]


class _Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def straight_runs() -> dict[str, dict[str, Any]]:
    return {}


def _straight(cache: dict[str, dict[str, Any]], key: str, name: str, hp: dict[str, Any]) -> dict[str, Any]:
    if key not in cache:
        cache[key] = Trainer(tiny_run(name, hp, epochs=EPOCHS)).run()
    return cache[key]


@pytest.mark.parametrize(("name", "hp"), VARIANTS, ids=IDS)
def test_same_seed_same_metrics(name: str, hp: dict[str, Any], straight_runs) -> None:
    key = f"{name}{sorted(hp.items())}"
    a = _straight(straight_runs, key, name, hp)
    b = Trainer(tiny_run(name, hp, epochs=EPOCHS)).run()
    strip = lambda m: {k: v for k, v in m.items() if k != "train_time"}  # noqa: E731
    assert strip(a["metrics"]) == strip(b["metrics"])
    assert _stable(a["history"]) == _stable(b["history"])
    other_seed = Trainer(tiny_run(name, hp, epochs=EPOCHS, seed=2)).run()
    assert _stable(other_seed["history"]) != _stable(a["history"])


@pytest.mark.parametrize(("name", "hp"), VARIANTS, ids=IDS)
def test_checkpoint_round_trip_continues_identically(name: str, hp: dict[str, Any], straight_runs,
                                                    tmp_path: Path) -> None:
    key = f"{name}{sorted(hp.items())}"
    straight = _straight(straight_runs, key, name, hp)
    config = tiny_run(name, hp, epochs=EPOCHS)
    ckpt_path = tmp_path / "checkpoint.pt"
    ckpt = Checkpoint(ckpt_path)

    def stop_after_two(history: list[dict[str, Any]]) -> None:
        if len(history) == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        Trainer(config, checkpoint=ckpt, on_epoch=stop_after_two).run()
    resumed = Trainer(config, checkpoint=ckpt).run()  # a fresh trainer and method instance
    assert [h["epoch"] for h in resumed["history"]] == list(range(EPOCHS))
    assert _stable(resumed["history"]) == _stable(straight["history"])


@pytest.mark.parametrize(("name", "hp"), VARIANTS, ids=IDS)
def test_history_and_metrics_are_complete(name: str, hp: dict[str, Any], straight_runs) -> None:
    out = _straight(straight_runs, f"{name}{sorted(hp.items())}", name, hp)
    expected = BASE_COLUMNS | DIAGNOSTICS.get(name, set())
    if name == "gce" and hp.get("truncated"):
        expected |= {"selected_frac", "select_precision", "select_recall"}
    assert len(out["history"]) == EPOCHS
    for row in out["history"]:
        assert expected <= set(row), f"missing {expected - set(row)}"
        assert all(isinstance(row[k], (int, float)) for k in expected)
    metrics = out["metrics"]
    assert {"val_selected", "last", "mean_last_k", "best_on_test", "epochs_run"} <= set(metrics)
    assert metrics["last"] == out["history"][-1]["test_acc"] and metrics["epochs_run"] == EPOCHS
    assert 0 <= metrics["val_selected"] <= 100 and out["noise"]["actual_rate"] > 0


def _reachable_tensors(root: object, limit: int = 20000) -> list:
    """Every tensor reachable from ``root`` through attributes, containers and generators' owners."""
    import torch

    seen, stack, found = set(), [root], []
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), type)):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.append(obj)
            continue
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, torch.nn.Module):
            stack.extend([*obj.parameters(), *obj.buffers()])
        elif hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
    return found


@pytest.mark.parametrize(("name", "hp"), VARIANTS, ids=IDS)
def test_no_method_can_reach_the_clean_labels(name: str, hp: dict[str, Any]) -> None:
    """The trainer keeps the clean labels to score beliefs; nothing it lends a method holds them."""
    trainer = Trainer(tiny_run(name, hp, epochs=1))
    ctx, method = trainer.setup()
    clean = trainer._clean
    assert clean is not None and ctx.data.y_train_clean is None
    assert not hasattr(ctx, "y_clean_for_diagnostics")
    for tensor in _reachable_tensors((ctx, method)):
        assert tensor is not clean
        assert tensor.untyped_storage().data_ptr() != clean.untyped_storage().data_ptr()
