"""Loading a results directory into long-format pandas DataFrames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from noisybench.metrics import METRICS
from noisybench.noise import parse_noise
from noisybench.store import ResultStore

ID_COLUMNS = ["dataset", "noise", "method", "seed"]


def _row(record: dict[str, Any]) -> dict[str, Any]:
    config = record.get("config", {})
    noise = record.get("noise", {})
    spec = parse_noise(config.get("noise", "none")) if config.get("noise") else None
    train = config.get("train", {})
    row: dict[str, Any] = {
        "run_id": record.get("run_id"),
        "grid": config.get("grid"),
        "dataset": config.get("dataset", {}).get("name"),
        "noise": config.get("noise"),
        "noise_family": spec.family if spec else None,
        "noise_rate": spec.rate if spec else None,
        "method": config.get("method"),
        "seed": config.get("seed"),
        "status": record.get("status"),
        "reason": record.get("reason"),
        "noise_rate_actual": noise.get("actual_rate"),
        "noise_hash": noise.get("sha256"),
        "protocol": train.get("protocol") or _legacy_protocol(train.get("profile")),
        "epochs": train.get("epochs"),
        "wall_time": record.get("wall_time"),
        "hparams": json.dumps(config.get("hparams", {}), sort_keys=True),
        "hparam_sources": json.dumps(config.get("hparam_sources", {}), sort_keys=True),
        "sweep": json.dumps(config.get("sweep") or {}, sort_keys=True),
        "finished_at": record.get("finished_at", ""),
    }
    metrics = record.get("metrics") or {}
    for column in METRICS.values():
        row[column] = metrics.get(column)
    for key, value in metrics.items():
        row.setdefault(key, value)
    return row


def _legacy_protocol(profile: str | None) -> str | None:
    """Protocol of a run stored before protocols existed: its profile was one recipe for every method."""
    if profile is None:
        return None
    return profile if profile == "fast" else "shared"


def load_results(root: str | Path) -> pd.DataFrame:
    """One row per finished run (done or failed) of a results directory, plus one per corrupt record.

    Columns: ``run_id, grid, dataset, noise, noise_family, noise_rate, method, seed, status,
    reason, noise_rate_actual, noise_hash, protocol, epochs, wall_time, hparams,
    hparam_sources, finished_at`` and every metric. A run whose final record is damaged gets
    status ``corrupt`` and what is wrong as its reason (its other columns are empty).
    """
    rows = []
    for stored in ResultStore(root).iter_stored():
        if stored.record is not None:
            rows.append(_row(stored.record))
        else:
            rows.append({"run_id": stored.run_id, "status": "corrupt", "reason": stored.problem})
    columns = ["run_id", "grid", *ID_COLUMNS, "noise_family", "noise_rate", "status", "reason",
               "noise_rate_actual", "noise_hash", "protocol", "epochs", "wall_time",
               "hparams", "hparam_sources", "finished_at", *METRICS.values()]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    return frame.sort_values(ID_COLUMNS, kind="stable").reset_index(drop=True)


def load_history(root: str | Path) -> pd.DataFrame:
    """One row per (finished run, epoch) with the run's identifying columns."""
    store = ResultStore(root)
    frames = []
    for record in store.iter_results():
        history = store.history(record["run_id"])
        if not history:
            continue
        frame = pd.DataFrame(history)
        base = _row(record)
        for key in ("run_id", *ID_COLUMNS, "status"):
            frame[key] = base[key]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
