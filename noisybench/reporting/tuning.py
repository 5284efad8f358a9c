"""How a grid's ``[tune]`` stage went, from the trial runs in a results frame (pure functions of the DataFrame).

Trial runs (``tune_stage == "tune"``) are not leaderboard rows: they ran on the tuning seeds. From them this module
rebuilds each setting's choice with the same rule ``run`` applied (:func:`noisybench.tuning.selection.select_trials`,
fed the noisy-validation accuracy only), and reports per method x setting the chosen values, the best and the worst
trial's validation accuracy (the method's sensitivity to its hyperparameters within the space) and the compute the
tuning spent (run-seconds, the sum of the trial runs' wall times).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from tabulate import tabulate

from noisybench.noise import noise_sort_key
from noisybench.tuning.selection import RULE, select_trials

#: The columns of a results frame that selection reads (``val_acc_best`` is passed on as ``val``).
SELECTION_COLUMNS = ["method", "dataset", "noise", "trial", "seed", "status", "val_acc_best"]


def split_trials(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(other runs, trial runs)`` of ``frame``: trial runs are the ``[tune]`` stage's."""
    if "tune_stage" not in frame.columns:
        return frame, frame.iloc[0:0]
    trial = frame["tune_stage"].astype(object).eq("tune").fillna(False).astype(bool)
    return frame[~trial], frame[trial]


@dataclass
class TunedSetting:
    """The tuning of one method in one (dataset, noise) setting."""

    method: str
    dataset: str
    noise: str
    budget: int
    effective_budget: int
    seeds: str
    trials: int  # trials with a finished run on every tuning seed
    failed_runs: int
    chosen: int | None
    values: dict[str, Any]
    best: float | None
    worst: float | None
    run_seconds: float
    space: dict[str, dict[str, Any]]


@dataclass
class TuningSummary:
    """Every tuned setting of a report and every trial's point (for the figures)."""

    settings: list[TunedSetting]
    points: list[dict[str, Any]] = field(default_factory=list)  # method, setting, trial, values, mean_val, chosen

    def budgets(self) -> dict[str, tuple[int, int]]:
        """Per method, the least and the most effective budget over its settings."""
        out: dict[str, tuple[int, int]] = {}
        for s in self.settings:
            low, high = out.get(s.method, (s.effective_budget, s.effective_budget))
            out[s.method] = (min(low, s.effective_budget), max(high, s.effective_budget))
        return out

    def asked(self) -> str:
        """The budget(s) asked, ``6`` (or ``4, 6`` when runs of several tunings are reported together)."""
        return ", ".join(str(b) for b in sorted({s.budget for s in self.settings}))

    def seeds(self) -> str:
        """The tuning seeds, ``1001, 1002``."""
        return "; ".join(sorted({s.seeds.replace(",", ", ") for s in self.settings}))

    def chosen(self, method: str, dataset: str, noise: str) -> TunedSetting | None:
        """The tuning of one cell, if it was tuned."""
        return next((s for s in self.settings if (s.method, s.dataset, s.noise) == (method, dataset, noise)), None)


def _json(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def summarize(trials: pd.DataFrame) -> TuningSummary | None:
    """The :class:`TuningSummary` of the trial runs ``trials`` (None without any)."""
    if trials.empty:
        return None
    rows = trials[SELECTION_COLUMNS].rename(columns={"val_acc_best": "val"}).to_dict("records")
    choices = select_trials(rows)
    settings, points = [], []
    cells = sorted(trials.groupby(["method", "dataset", "noise"], sort=False),
                   key=lambda kv: (kv[0][0] != "ce", kv[0][0], kv[0][1], noise_sort_key(kv[0][2])))
    for (method, dataset, noise), group in cells:  # the leaderboard's order: the CE baseline first
        choice = choices[(method, dataset, noise)]
        first = group.sort_values("trial").iloc[0]
        values = {int(t): _json(v) for t, v in zip(group["trial"], group["tune_values"])}
        seconds = pd.to_numeric(group["wall_time"], errors="coerce").fillna(0.0).sum()
        settings.append(TunedSetting(
            method, dataset, noise, int(first["tune_budget"]), int(first["tune_effective_budget"]),
            str(first["tune_seeds"]), sum(s.mean is not None for s in choice.scores.values()),
            int((group["status"] != "done").sum()), choice.trial,
            values.get(choice.trial, {}) if choice.trial is not None else {}, choice.best, choice.worst,
            float(seconds), _json(first["tune_space"])))
        points += [{"method": method, "dataset": dataset, "noise": noise, "trial": t, "values": values.get(t, {}),
                    "mean_val": s.mean, "chosen": t == choice.trial} for t, s in choice.scores.items()]
    return TuningSummary(settings, points)


def sentence(summary: TuningSummary, label: Any = str) -> str:
    """The caption sentence: budget, effective budgets, tuning seeds and the selection rule."""
    parts = [f"{label(m)} {lo}" if lo == hi else f"{label(m)} {lo}–{hi}" for m, (lo, hi) in summary.budgets().items()]
    return (f"Tuning: budget {summary.asked()} trials per method and setting (effective: {', '.join(parts)}) on "
            f"tuning seeds {summary.seeds()}, which are not scored; per setting, {RULE}; the reported seeds ran "
            "the chosen trial.")


def _num(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def _values(values: dict[str, Any]) -> str:
    shown = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(values.items())]
    return ", ".join(shown) or "(nothing tuned)"


def tuning_frame(summary: TuningSummary, label: Any = str) -> pd.DataFrame:
    """One row per method x setting: budgets, the chosen trial and values, best and worst trial, compute."""
    rows = [{"method": label(s.method), "dataset": s.dataset, "noise": s.noise,
             "budget": f"{s.effective_budget}/{s.budget}", "trials done": s.trials, "chosen trial": s.chosen,
             "chosen values": _values(s.values), "best val": _num(s.best), "worst val": _num(s.worst),
             "spread": _num(None if s.best is None or s.worst is None else s.best - s.worst),
             "tuning run-s": f"{s.run_seconds:.1f}", "failed runs": s.failed_runs} for s in summary.settings]
    return pd.DataFrame(rows)


def render_tuning(summary: TuningSummary | None, label: Any = str, flavour: str = "table", heading: str = "",
                  with_sentence: bool = True) -> str:
    """``noisybench report DIR --format tuning``: the tuning table with its legend (``heading``: Markdown marks;
    ``with_sentence``: start the legend with :func:`sentence`, unless a caption around it says it already)."""
    if summary is None:
        return "No tuning runs: this results folder holds no grid run with a [tune] table.\n"
    table = tabulate(tuning_frame(summary, label), headers="keys", showindex=False, disable_numparse=True,
                     tablefmt="simple" if flavour == "table" else "github")
    total = sum(s.run_seconds for s in summary.settings)
    lead = sentence(summary, label) + " " if with_sentence else ""
    legend = (f"{lead}budget: effective / asked (a space with fewer points runs fewer trials); "
              "best and worst val: mean noisy-validation accuracy (%) over the tuning seeds of the best and the worst "
              "trial (their spread is the method's sensitivity within its space); tuning run-s: the trial runs' "
              f"summed wall time ({total:.1f} run-seconds in all).")
    return f"{heading}Tuning\n\n{table}\n\n{legend}\n"
