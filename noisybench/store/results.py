"""Loading a results directory into long-format pandas DataFrames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from noisybench.errors import NoisybenchError, UnknownNameError
from noisybench.metrics import METRICS
from noisybench.noise import noise_display, noise_sort_key, parse_noise
from noisybench.orchestration.fingerprint import current_digest, matches
from noisybench.store import ResultStore

ID_COLUMNS = ["dataset", "noise", "method", "seed"]


def _spec(text: Any) -> tuple[str | None, float | None]:
    """Family and rate of a stored noise spec; a family this install cannot load (a plugin removed or broken since
    the run) is read from the text, so its runs are still reported."""
    if not text:
        return None, None
    try:
        spec = parse_noise(text)
    except NoisybenchError:
        family, _, arg = str(text).partition(":")
        try:
            return family.strip().lower(), float(arg)
        except ValueError:
            return family.strip().lower(), None
    return spec.family, spec.rate


def _row(record: dict[str, Any]) -> dict[str, Any]:
    config = record.get("config", {})
    noise = record.get("noise") or {}
    family, rate = _spec(config.get("noise"))
    train = config.get("train") or {}
    row: dict[str, Any] = {
        "run_id": record.get("run_id"),
        "grid": config.get("grid"),
        "dataset": config.get("dataset", {}).get("name"),
        "noise": config.get("noise"),
        "noise_family": family,
        "noise_rate": rate,
        "method": config.get("method"),
        "seed": config.get("seed"),
        "status": record.get("status"),
        "reason": record.get("reason"),
        "noise_rate_actual": noise.get("actual_rate"),
        "noise_hash": noise.get("sha256"),
        "protocol": train.get("protocol") or _legacy_protocol(train.get("profile")),
        "epochs": train.get("epochs"),
        "wall_time": record.get("wall_time"),
        "finished_at": record.get("finished_at", ""),
        "hparams": json.dumps(config.get("hparams", {}), sort_keys=True),
        "hparam_sources": json.dumps(config.get("hparam_sources", {}), sort_keys=True),
        "sweep": json.dumps(config.get("sweep") or {}, sort_keys=True),
        "fingerprint": current_digest(record),  # records of an older fingerprint scheme translated
        **_tuning_columns(config.get("tuning")),
    }
    metrics = record.get("metrics") or {}
    for column in METRICS.values():
        row[column] = metrics.get(column)
    for key, value in metrics.items():
        row.setdefault(key, value)
    return row


#: Columns of a ``[tune]`` run's tuning metadata (empty for other runs): stage (``tune`` or ``eval``), trial number,
#: budget asked and effective, tuning seeds, the trial's values and the setting's search space (JSON).
TUNING_COLUMNS = ("tune_stage", "trial", "tune_budget", "tune_effective_budget", "tune_seeds", "tune_values",
                  "tune_space")


def _tuning_columns(tuning: Any) -> dict[str, Any]:
    if not isinstance(tuning, dict) or not tuning:
        return dict.fromkeys(TUNING_COLUMNS)
    seeds = tuning.get("seeds") or []
    return {"tune_stage": tuning.get("stage"), "trial": tuning.get("trial"), "tune_budget": tuning.get("budget"),
            "tune_effective_budget": tuning.get("effective_budget"), "tune_seeds": ",".join(map(str, seeds)),
            "tune_values": json.dumps(tuning.get("values") or {}, sort_keys=True),
            "tune_space": json.dumps(tuning.get("space") or {}, sort_keys=True)}


def _corrupt_row(run_id: str, why: str, status: str = "corrupt") -> dict[str, Any]:
    return {"run_id": run_id, "status": status, "reason": why}


def _display_name(registry: Any, name: object) -> str:
    """The plugin's ``display_name``, else the raw name (unknown plugins, e.g. from another install)."""
    try:
        return getattr(registry.get(str(name)), "display_name", "") or str(name)
    except UnknownNameError:  # BrokenPluginError included: a plugin that fails to import since
        return str(name)


def add_display_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``method_display``, ``dataset_display``, ``noise_display`` and ``noise_order`` (natural sort key).

    Display names come from the plugins (``Method.display_name``, ``Dataset.display_name``) and
    :func:`noisybench.noise.noise_display`; ``noise_order`` ranks settings by noise family, then rate.
    """
    from noisybench.registry import DATASETS, METHODS

    out = frame.copy()
    methods = {m: _display_name(METHODS, m) for m in out["method"].dropna().unique()}
    datasets = {d: _display_name(DATASETS, d) for d in out["dataset"].dropna().unique()}
    noises = sorted(out["noise"].dropna().unique(), key=noise_sort_key)
    out["method_display"] = out["method"].map(methods)
    out["dataset_display"] = out["dataset"].map(datasets)
    out["noise_display"] = out["noise"].map(lambda n: noise_display(n) if isinstance(n, str) else n)
    out["noise_order"] = out["noise"].map({n: i for i, n in enumerate(noises)})
    return out


def _legacy_protocol(profile: str | None) -> str | None:
    """Protocol of a run stored before protocols existed: its profile was one recipe for every method."""
    if profile is None:
        return None
    return profile if profile == "fast" else "shared"


def load_results(root: str | Path) -> pd.DataFrame:
    """One row per finished run (done or failed) of a results directory, plus one per corrupt record.

    Columns: ``run_id, grid, dataset, noise, noise_family, noise_rate, method, seed, status,
    reason, noise_rate_actual, noise_hash, protocol, epochs, wall_time, finished_at, hparams,
    hparam_sources, fingerprint, stale`` (code or inputs changed since it ran), the tuning columns of
    :data:`TUNING_COLUMNS` (``trial``: the run's trial number under a grid's ``[tune]``), every metric
    (with ``<metric>_correct`` / ``<metric>_total`` counts when the runs recorded them) and the
    display columns of :func:`add_display_columns`. A run whose final record is damaged gets
    status ``corrupt`` (``unreadable`` when this user may not read it) and what is wrong as its reason (its
    other columns are empty).
    """
    rows = []
    store = ResultStore(root)
    expected = store.planned_fingerprints()
    for stored in store.iter_stored():
        if stored.record is None:
            rows.append(_corrupt_row(stored.run_id, stored.problem, stored.state))
            continue
        row = _row(stored.record)
        row["stale"] = stored.run_id in expected and not matches(stored.record, expected[stored.run_id])
        rows.append(row)
    columns = ["run_id", "grid", *ID_COLUMNS, "noise_family", "noise_rate", "status", "reason",
               "noise_rate_actual", "noise_hash", "protocol", "epochs", "wall_time", "finished_at",
               "hparams", "hparam_sources", *TUNING_COLUMNS, *METRICS.values(),
               "method_display", "dataset_display", "noise_display", "noise_order"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    for name in (*ID_COLUMNS, *TUNING_COLUMNS):
        if name not in frame.columns:
            frame[name] = None
    for name in ("trial", "tune_budget", "tune_effective_budget"):
        frame[name] = pd.to_numeric(frame[name]).astype("Int64")  # whole numbers, empty for untuned runs
    frame = add_display_columns(frame)
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
