"""Synthetic results stores written through :class:`noisybench.store.ResultStore` with fake configs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from noisybench.metrics import final_metrics
from noisybench.store import ResultStore

GOLDEN = Path(__file__).parent / "golden"


def float32_percent(correct: int, total: int) -> float:
    """Percent as the trainer computes it (a float32 mean): equal fractions, but float noise in sums."""
    return float(np.float32(correct) / np.float32(total)) * 100.0


def fake_history(final: float, epochs: int = 4, diagnostics: bool = False,
                 counts: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """A history whose val-selected, last and mean-last metrics are all ``final`` (peak at the last epoch).

    With ``counts = (correct, total)`` every epoch also records ``test_correct`` / ``test_total`` and the
    last epoch's test accuracy is ``float32_percent(correct, total)`` (``final`` is then ignored).
    """
    rows = []
    for e in range(epochs):
        acc = final - 2.0 * (epochs - 1 - e)
        row = {"epoch": e, "lr": 0.1, "train_loss": 1.0 / (e + 1), "val_acc": acc - 5.0, "test_acc": acc,
               "epoch_time": 0.01, "peak_mem_mb": 1.0}
        if counts is not None:
            correct = counts[0] - 20 * (epochs - 1 - e)
            row.update(test_acc=float32_percent(correct, counts[1]), test_correct=correct, test_total=counts[1])
        if diagnostics:
            row.update(selected_frac=0.5 + 0.1 * e, select_precision=0.8 + 0.02 * e, select_recall=0.6 + 0.05 * e)
        rows.append(row)
    return rows


def write_run(root: Path, method: str, dataset: str, noise: str, seed: int, value: float, *, epochs: int = 4,
              protocol: str = "shared", hparam_sources: dict[str, str] | None = None, noise_hash: str | None = None,
              status: str = "done", diagnostics: bool = False, hparams: dict[str, Any] | None = None,
              finished_at: str = "2026-01-01T00:00:00+00:00", counts: tuple[int, int] | None = None) -> str:
    """Write one finished run; its metrics all equal ``value`` (from a fake history)."""
    store = ResultStore(root)
    ident = f"{method}|{dataset}|{noise}|{seed}|{epochs}|{protocol}|{hparam_sources}|{noise_hash}|{hparams}"
    run_id = hashlib.sha256(ident.encode()).hexdigest()[:16]
    config = {"run_id": run_id, "dataset": {"name": dataset, "params": {}}, "noise": noise, "method": method,
              "hparams": hparams if hparams is not None else {"lr_scale": 1.0},
              "hparam_sources": hparam_sources or {"lr_scale": "suite"}, "seed": seed,
              "train": {"protocol": protocol, "epochs": epochs}, "grid": "synthetic"}
    store.write_start(config, {"python": "test"})
    history = fake_history(value, epochs, diagnostics, counts)
    store.write_history(run_id, history)
    record: dict[str, Any] = {"run_id": run_id, "config": config, "status": status, "wall_time": 1.0,
                              "finished_at": finished_at}
    if status == "done":
        hash_ = noise_hash or hashlib.sha256(f"{dataset}|{noise}|{seed}".encode()).hexdigest()
        record.update(metrics=final_metrics(history, k=2), noise={"actual_rate": 0.2, "sha256": hash_})
        store.write_noise(run_id, {"sha256": hash_, "actual_rate": 0.2}, np.zeros(4, dtype=np.int64))
    else:
        record["reason"] = "RuntimeError: boom"
    store.write_result(record)
    return run_id


#: method -> (dataset, noise) -> per-seed values; 3 seeds, 2 datasets, 3 noise settings on one, 1 on the other.
SYNTHETIC: dict[str, dict[tuple[str, str], list[float]]] = {
    "ce": {("digits", "sym:0.2"): [80.0, 81.0, 82.5], ("digits", "sym:0.5"): [60.0, 63.0, 61.0],
           ("digits", "asym:0.4"): [70.0, 71.5, 69.0], ("mnist1d", "sym:0.2"): [55.0, 57.0, 56.0]},
    "gce": {("digits", "sym:0.2"): [84.0, 84.5, 85.5], ("digits", "sym:0.5"): [70.0, 71.0, 69.5],
            ("digits", "asym:0.4"): [70.5, 70.0, 71.0], ("mnist1d", "sym:0.2"): [56.0, 58.0, 56.5]},
    "co_teaching": {("digits", "sym:0.2"): [83.0, 85.0, 84.0], ("digits", "sym:0.5"): [68.0, 69.0, 71.0],
                    ("digits", "asym:0.4"): [66.0, 65.0, 67.5], ("mnist1d", "sym:0.2"): [59.0, 60.0, 61.0]},
}


@pytest.fixture
def synthetic_store(tmp_path: Path) -> Path:
    """A results directory with 3 methods x 4 settings x 3 seeds (``SYNTHETIC``)."""
    root = tmp_path / "synthetic"
    for method, settings in SYNTHETIC.items():
        for (dataset, noise), values in settings.items():
            for seed, value in enumerate(values, start=1):
                write_run(root, method, dataset, noise, seed, value, diagnostics=method == "co_teaching")
    return root
