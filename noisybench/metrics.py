"""Final metrics of a run from its per-epoch history (the evaluation protocol: docs/running.md)."""

from __future__ import annotations

import math
from typing import Any

#: CLI metric names -> result columns. ``best`` selects on the test set and is leaky.
METRICS: dict[str, str] = {
    "val": "val_selected",
    "last": "last",
    "mean-last": "mean_last_k",
    "best": "best_on_test",
    "clean-val": "clean_val_selected",
}
LEAKY_METRICS = {"best_on_test"}
METRIC_TITLES: dict[str, str] = {
    "val_selected": "test accuracy at the best noisy-validation epoch",
    "last": "test accuracy after the last epoch",
    "mean_last_k": "mean test accuracy over the last k epochs",
    "best_on_test": "best test accuracy over epochs (test-selected, leaky)",
    "clean_val_selected": "test accuracy at the best clean-validation epoch (Clothing1M's clean val set)",
}


def metric_column(name: str) -> str:
    """Map a CLI metric name (``val``) or a column name to the column name."""
    from noisybench.errors import ConfigError, suggest

    if name in METRICS:
        return METRICS[name]
    if name in METRICS.values():
        return name
    choices = list(METRICS) + list(METRICS.values())
    raise ConfigError(f"unknown metric {name!r}.{suggest(name, choices)} Choose from: {', '.join(METRICS)}")


def final_metrics(history: list[dict[str, Any]], k: int = 10) -> dict[str, Any]:
    """Summarise a history: val-selected, last, mean of last ``k`` and best-on-test accuracy.

    Ties in validation accuracy go to the later epoch.
    """
    if not history:
        raise ValueError("no epochs in history")
    test = [float(h["test_acc"]) for h in history]
    val = [float(h.get("val_acc", math.nan)) for h in history]
    best_val_epoch = None
    for i, v in enumerate(val):
        if not math.isnan(v) and (best_val_epoch is None or v >= val[best_val_epoch]):
            best_val_epoch = i
    metrics_extra = _select_at_best(history, "clean_val_acc", test, "clean_val_selected")
    k = min(k, len(test))
    best_test_epoch = max(range(len(test)), key=lambda i: (test[i], i))
    return {
        "val_selected": test[best_val_epoch] if best_val_epoch is not None else math.nan,
        "val_best_epoch": best_val_epoch,
        "val_acc_best": val[best_val_epoch] if best_val_epoch is not None else math.nan,
        "last": test[-1],
        "mean_last_k": sum(test[-k:]) / k,
        "mean_last_k_k": k,
        "best_on_test": test[best_test_epoch],
        "best_on_test_epoch": best_test_epoch,
        "best_on_test_leaky": True,
        "epochs_run": len(history),
        "train_time": sum(float(h.get("epoch_time", 0.0)) for h in history),
        **metrics_extra,
        **_counts(history, {"val_selected": best_val_epoch, "last": len(test) - 1,
                            "best_on_test": best_test_epoch,
                            "clean_val_selected": metrics_extra.get("clean_val_selected_epoch")}, k),
    }


def _counts(history: list[dict[str, Any]], epochs: dict[str, int | None], k: int) -> dict[str, int]:
    """``<metric>_correct`` / ``<metric>_total``: the exact test fraction behind each selected accuracy.

    Only when every epoch records ``test_correct`` and ``test_total`` (older histories do not). For
    ``mean_last_k`` the counts are summed over the last ``k`` epochs.
    """
    if not all(h.get("test_correct") is not None and h.get("test_total") is not None for h in history):
        return {}
    out = {}
    for name, epoch in epochs.items():
        if epoch is not None:
            out[f"{name}_correct"] = int(history[epoch]["test_correct"])
            out[f"{name}_total"] = int(history[epoch]["test_total"])
    out["mean_last_k_correct"] = sum(int(h["test_correct"]) for h in history[-k:])
    out["mean_last_k_total"] = sum(int(h["test_total"]) for h in history[-k:])
    return out


def _select_at_best(history: list[dict[str, Any]], key: str, test: list[float], name: str) -> dict[str, Any]:
    """Test accuracy at the epoch with the best ``key`` (ties: later epoch), when the history has it."""
    scores = [float(h[key]) if h.get(key) is not None else math.nan for h in history]
    valid = [i for i, v in enumerate(scores) if not math.isnan(v)]
    if not valid:
        return {}
    best = max(valid, key=lambda i: (scores[i], i))
    return {name: test[best], f"{name}_epoch": best}
