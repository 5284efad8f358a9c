"""The selection rule of a grid's ``[tune]`` stage: one pure function shared by ``run`` and the reports.

Per method x dataset x noise setting, the chosen trial is the one with the best mean noisy-validation accuracy
over the tuning seeds; ties go to the lower trial number. A trial counts only when every tuning seed finished
with a validation accuracy (a failed seed leaves its trial out). :func:`select_trials` reads exactly the fields
of :data:`SELECTION_FIELDS` of each row, so no test metric can reach the choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The only fields of a trial row that selection reads (``val``: noisy-validation accuracy of the selected epoch).
SELECTION_FIELDS = ("method", "dataset", "noise", "trial", "seed", "status", "val")
RULE = ("the trial with the best mean noisy-validation accuracy over the tuning seeds (ties to the lower trial "
        "number); test accuracy is never read")

Cell = tuple[str, str, str]


@dataclass(frozen=True)
class TrialScore:
    """One trial of one setting: its mean noisy-validation accuracy over the tuning seeds (None when it does not
    count: a seed failed, is missing or recorded no validation accuracy)."""

    trial: int
    mean: float | None
    seeds: tuple[int, ...]
    failed: int


@dataclass(frozen=True)
class CellChoice:
    """The choice in one (method, dataset, noise) setting; ``trial`` is None when no trial counts."""

    cell: Cell
    trial: int | None
    scores: dict[int, TrialScore] = field(default_factory=dict)

    @property
    def best(self) -> float | None:
        """The chosen trial's mean validation accuracy."""
        return None if self.trial is None else self.scores[self.trial].mean

    @property
    def worst(self) -> float | None:
        """The lowest mean validation accuracy among the trials that count."""
        means = [s.mean for s in self.scores.values() if s.mean is not None]
        return min(means) if means else None


def _val(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def select_trials(rows: Iterable[Mapping[str, Any]]) -> dict[Cell, CellChoice]:
    """The chosen trial of every (method, dataset, noise) setting of ``rows``, one row per trial run.

    Each row gives ``method``, ``dataset``, ``noise``, ``trial``, ``seed``, ``status`` (``done`` counts) and
    ``val``; nothing else is read. The tuning seeds of a setting are every seed its rows name, so a trial whose
    run on one of them failed or is missing does not count.
    """
    runs: dict[Cell, dict[int, dict[int, tuple[str, float | None]]]] = {}
    for row in rows:
        cell = (str(row["method"]), str(row["dataset"]), str(row["noise"]))
        trial, seed = int(row["trial"]), int(row["seed"])
        runs.setdefault(cell, {}).setdefault(trial, {})[seed] = (str(row["status"]), _val(row["val"]))
    out = {}
    for cell, trials in runs.items():
        seeds = sorted({s for by_seed in trials.values() for s in by_seed})
        scores = {t: _score(t, trials[t], seeds) for t in sorted(trials)}
        counted = [s for s in scores.values() if s.mean is not None]
        best = max(counted, key=lambda s: (s.mean, -s.trial)) if counted else None
        out[cell] = CellChoice(cell, best.trial if best else None, scores)
    return out


def _score(trial: int, by_seed: dict[int, tuple[str, float | None]], seeds: list[int]) -> TrialScore:
    values = [by_seed[s][1] if s in by_seed and by_seed[s][0] == "done" else None for s in seeds]
    failed = sum(status != "done" for status, _ in by_seed.values())
    mean = None if any(v is None for v in values) else sum(values) / len(values)  # type: ignore[arg-type]
    return TrialScore(trial, mean, tuple(seeds), failed)
