"""Final metrics from a per-epoch history."""

from __future__ import annotations

import math

import pytest

from noisybench.errors import ConfigError
from noisybench.metrics import final_metrics, metric_column

HISTORY = [
    {"epoch": 0, "val_acc": 50.0, "test_acc": 40.0, "epoch_time": 1.0},
    {"epoch": 1, "val_acc": 70.0, "test_acc": 65.0, "epoch_time": 1.0},
    {"epoch": 2, "val_acc": 70.0, "test_acc": 60.0, "epoch_time": 1.0},
    {"epoch": 3, "val_acc": 60.0, "test_acc": 80.0, "epoch_time": 1.0},
]


def test_val_selected_last_mean_and_leaky_best() -> None:
    m = final_metrics(HISTORY, k=2)
    assert m["val_selected"] == 60.0 and m["val_best_epoch"] == 2  # ties go to the later epoch
    assert m["last"] == 80.0 and m["mean_last_k"] == 70.0 and m["mean_last_k_k"] == 2
    assert m["best_on_test"] == 80.0 and m["best_on_test_leaky"] is True
    assert m["train_time"] == 4.0 and "clean_val_selected" not in m


def test_without_validation_split_val_selected_is_nan() -> None:
    m = final_metrics([{k: v for k, v in h.items() if k != "val_acc"} for h in HISTORY])
    assert math.isnan(m["val_selected"]) and m["mean_last_k_k"] == 4


def test_clean_val_selected_when_the_history_has_a_clean_val_set() -> None:
    history = [dict(h, clean_val_acc=c) for h, c in zip(HISTORY, [10.0, 30.0, 20.0, 25.0])]
    m = final_metrics(history)
    assert m["clean_val_selected"] == 65.0 and m["clean_val_selected_epoch"] == 1


def test_metric_names() -> None:
    assert metric_column("val") == "val_selected" and metric_column("clean-val") == "clean_val_selected"
    with pytest.raises(ConfigError, match="Did you mean 'last'"):
        metric_column("lats")


def test_counts_for_every_selected_metric() -> None:
    history = [{"test_acc": 100.0 * c / 50, "val_acc": v, "test_correct": c, "test_total": 50}
               for c, v in ((30, 10.0), (45, 30.0), (40, 20.0))]
    m = final_metrics(history, k=2)
    assert (m["val_selected_correct"], m["val_selected_total"]) == (45, 50)
    assert (m["best_on_test_correct"], m["last_correct"]) == (45, 40)
    assert (m["mean_last_k_correct"], m["mean_last_k_total"]) == (85, 100)
    assert m["val_selected"] == 90.0  # the percentages are untouched
    old = final_metrics([{k: v for k, v in h.items() if k != "test_correct"} for h in history], k=2)
    assert not any(k.endswith(("_correct", "_total")) for k in old)  # old histories: no counts, no guess
