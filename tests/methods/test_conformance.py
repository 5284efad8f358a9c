"""Every registered method, through the shared trainer: determinism, exact resume, complete records.

Parametrized over ``METHODS.list()`` (so a new plugin is checked automatically) plus the option
variants that change a method's control flow. The checks are :mod:`noisybench.conformance`'s, the
same that ``noisybench check-method NAME`` runs on any installed method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from noisybench.conformance import BASE_COLUMNS, EPOCHS, Probe
from noisybench.registry import METHODS
from noisybench.trainer import Trainer
from tests.methods._helpers import tiny_run

VARIANTS: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in METHODS.list()] + [
    ("gce", {"truncated": True, "start_prune": 1, "prune_every": 1}),
    ("alr", {"ema_granularity": "epoch", "warmup_end": 1}),
    ("alr", {"entropy_on": "targets", "entropy_threshold": 0.5, "warmup_end": 1}),
    ("alr", {"entropy_threshold": 0.5, "entropy_ramp": 1, "warmup_end": 1}),
    ("dividemix", {"loss_history": 3, "conf_penalty": True}),
    ("dividemix", {"mix_labelled_only": True, "lambda_u": 0.0}),
    ("gls", {"smooth_rate": -6.0, "warmup": 2}),  # CE warm-up, reset to its best state, then NLS
    ("selc", {"es": 1}),  # label correction from the second epoch
]
IDS = [name + "".join(f"-{k}={v}" for k, v in hp.items()) for name, hp in VARIANTS]
#: Agreed diagnostic columns, per method (and GCE only when truncated).
DIAGNOSTICS = {
    "elr": {"refined_acc", "refined_acc_noisy"},
    "alr": {"refined_acc", "refined_acc_noisy"},
    "selc": {"refined_acc", "refined_acc_noisy"},
    "dividemix": {"selected_frac", "select_precision", "select_recall"},
    "coteaching": {"selected_frac", "select_precision", "select_recall", "test_acc_net2", "forget_rate"},
    "jocor": {"selected_frac", "select_precision", "select_recall", "test_acc_net2", "forget_rate"},
    "pes": {"selected_frac", "select_precision", "select_recall"},
    "pes-semi": {"selected_frac", "select_precision", "select_recall"},
    "elr-plus": {"refined_acc", "refined_acc_noisy"},
    "sop": {"refined_acc", "refined_acc_noisy"},
    "sop-plus": {"refined_acc", "refined_acc_noisy"},
}


@pytest.fixture(scope="module")
def probes() -> Callable[[str, dict[str, Any]], Probe]:
    """One :class:`Probe` per variant, so its straight run is trained once for all checks."""
    cache: dict[str, Probe] = {}

    def get(name: str, hp: dict[str, Any]) -> Probe:
        key = f"{name}{sorted(hp.items())}"
        if key not in cache:
            cache[key] = Probe(name, hp, epochs=EPOCHS)
        return cache[key]

    return get


@pytest.mark.parametrize(("name", "hp"), VARIANTS, ids=IDS)
def test_same_seed_same_metrics(name: str, hp: dict[str, Any], probes) -> None:
    result = probes(name, hp).determinism()
    assert result.ok, result.detail


@pytest.mark.parametrize(("name", "hp"), VARIANTS, ids=IDS)
def test_checkpoint_round_trip_continues_identically(name: str, hp: dict[str, Any], probes) -> None:
    probe = probes(name, hp)
    result = probe.resume(stop_after=2)  # a fresh trainer and method instance resume after epoch 1
    assert result.ok, result.detail
    assert probe.straight().out["metrics"]["epochs_run"] == EPOCHS


@pytest.mark.parametrize(("name", "hp"), VARIANTS, ids=IDS)
def test_history_and_metrics_are_complete(name: str, hp: dict[str, Any], probes) -> None:
    probe = probes(name, hp)
    result = probe.history()
    assert result.ok, result.detail
    out = probe.straight().out
    expected = set(BASE_COLUMNS) | DIAGNOSTICS.get(name, set())
    if name == "gce" and hp.get("truncated"):
        expected |= {"selected_frac", "select_precision", "select_recall"}
    for row in out["history"]:
        assert expected <= set(row), f"missing {expected - set(row)}"
        assert all(isinstance(row[k], (int, float)) for k in expected)
    metrics = out["metrics"]
    assert metrics["last"] == out["history"][-1]["test_acc"] and metrics["epochs_run"] == EPOCHS
    assert 0 <= metrics["val_selected"] <= 100 and out["noise"]["actual_rate"] > 0


@pytest.mark.parametrize(("name", "hp"), VARIANTS, ids=IDS)
def test_search_space_resolves_everywhere(name: str, hp: dict[str, Any], probes) -> None:
    result = probes(name, hp).search_space()
    assert result.ok, result.detail


@pytest.mark.parametrize(("name", "hp"), VARIANTS, ids=IDS)
def test_hyperparameters_keep_the_contract(name: str, hp: dict[str, Any], probes) -> None:
    result = probes(name, hp).contract()
    assert result.ok, result.detail


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


@pytest.mark.parametrize("name", METHODS.list())
def test_every_method_trains_and_resumes_under_the_contract_extensions(name: str) -> None:
    """The recipe keys of the extensions at non-neutral values (phases, clipping, per-step decay, Adam's beta_1
    switch, per-module weight decay, a named policy): trained and resumed across the phase boundary exactly."""
    result = Probe(name).extensions()
    assert result.ok, result.detail
