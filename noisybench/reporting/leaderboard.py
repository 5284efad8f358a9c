"""The leaderboard model: methods x (dataset, noise) cells with seeds, ranks and significance.

Every renderer (terminal, Markdown, CSV, JSON, LaTeX, HTML) reads the same :class:`Leaderboard`, so the
numbers, bold/underline marks and significance flags are identical in every format.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from noisybench.errors import NoisybenchError
from noisybench.metrics import LEAKY_METRICS, METRICS, metric_column
from noisybench.reporting import stats
from noisybench.reporting.guardrails import check_protocol, drop_superseded, matched_pairs, select_tuned


@dataclass
class Column:
    """One leaderboard column: a dataset under one noise setting."""

    dataset: str
    noise: str
    family: str | None
    rate: float | None

    @property
    def key(self) -> tuple[str, str]:
        """``(dataset, noise)``."""
        return self.dataset, self.noise

    @property
    def label(self) -> str:
        """Header text of the noise setting, e.g. ``sym 50%`` or ``human aggre``."""
        return noise_label(self.noise)


@dataclass
class Cell:
    """Mean ± sample std of one method in one column, with its test against the column's best."""

    method: str
    dataset: str
    noise: str
    values: dict[int, float]
    mean: float
    std: float
    n: int
    place: int = 0
    p_value: float | None = None
    p_holm: float | None = None
    significant: bool | None = None
    n_paired: int = 0
    mean_diff: float | None = None
    ci95: tuple[float, float] | None = None
    effect_dz: float | None = None
    test_note: str = ""

    @property
    def not_worse(self) -> bool:
        """True when tested against the best and the difference is not significant (gets the marker)."""
        return self.significant is False


@dataclass
class AcrossSettings:
    """Ranks and omnibus/post-hoc tests over the settings every method covers."""

    methods: list[str]
    settings: list[tuple[str, str]]
    ranks: dict[str, float]
    friedman: stats.FriedmanResult | None
    friedman_note: str
    wilcoxon: stats.PairwiseWilcoxon
    cd: float | None


@dataclass
class Leaderboard:
    """Everything a report shows, computed once."""

    metric: str
    alpha: float
    methods: list[str]
    columns: list[Column]
    cells: dict[tuple[str, str, str], Cell]
    across: AcrossSettings | None
    warnings: list[str] = field(default_factory=list)
    tuned: list[str] = field(default_factory=list)  # which [sweep] point each swept cell uses, and why
    published: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)
    failed_runs: int = 0
    protocols: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (method, dataset, noise) -> protocol

    @property
    def metric_name(self) -> str:
        """CLI name of the metric (``val``, ``last``, ``mean-last``, ``best``)."""
        return {v: k for k, v in METRICS.items()}.get(self.metric, self.metric)

    @property
    def leaky(self) -> bool:
        """True when the metric selects on the test set."""
        return self.metric in LEAKY_METRICS

    def cell(self, method: str, column: Column) -> Cell | None:
        """The cell of ``method`` in ``column`` (None when it has no finished run)."""
        return self.cells.get((method, column.dataset, column.noise))

    def datasets(self) -> list[str]:
        """Datasets in column order."""
        return list(dict.fromkeys(c.dataset for c in self.columns))

    def n_values(self) -> list[int]:
        """Distinct n over all cells, ascending."""
        return sorted({c.n for c in self.cells.values()})

    def cell_sizes(self) -> list[int]:
        """The number of seeds of every cell."""
        return [c.n for c in self.cells.values()]


def noise_label(noise: str) -> str:
    """Readable noise setting: ``sym:0.5`` -> ``sym 50%``, ``human:aggre`` -> ``human aggre``."""
    family, _, arg = noise.partition(":")
    if not arg:
        return family
    try:
        rate = float(arg)
    except ValueError:
        return f"{family} {arg}"
    return f"{family} {rate * 100:g}%"


def _select(values: pd.Series, patterns: Sequence[str] | None, what: str) -> pd.Series:
    if not patterns:
        return pd.Series(True, index=values.index)
    keep = values.map(lambda v: any(fnmatch.fnmatchcase(str(v), p) for p in patterns))
    if not keep.any():
        choices = ", ".join(sorted(set(map(str, values))))
        raise NoisybenchError(f"no {what} matches {', '.join(patterns)}; available: {choices}")
    return keep


def filter_runs(frame: pd.DataFrame, datasets: Sequence[str] | None = None, noises: Sequence[str] | None = None,
                methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Keep runs whose dataset / noise / method match any of the shell-style patterns given."""
    keep = _select(frame["dataset"], datasets, "dataset")
    keep &= _select(frame["noise"], noises, "noise setting")
    keep &= _select(frame["method"], methods, "method")
    return frame[keep]


def _columns(done: pd.DataFrame) -> list[Column]:
    keys = done[["dataset", "noise", "noise_family", "noise_rate"]].drop_duplicates(["dataset", "noise"])
    cols = [Column(r.dataset, r.noise, r.noise_family, None if pd.isna(r.noise_rate) else float(r.noise_rate))
            for r in keys.itertuples()]
    return sorted(cols, key=lambda c: (c.dataset, c.family or "", c.rate if c.rate is not None else -1.0, c.noise))


def _cells(done: pd.DataFrame, column: str) -> dict[tuple[str, str, str], Cell]:
    cells = {}
    for (method, dataset, noise), group in done.groupby(["method", "dataset", "noise"], sort=False):
        group = group.dropna(subset=[column])
        if group.empty:
            continue
        values = {int(s): float(v) for s, v in zip(group["seed"], group[column])}
        arr = np.array(list(values.values()))
        std = float(arr.std(ddof=1)) if arr.size >= 2 else math.nan
        cells[(method, dataset, noise)] = Cell(method, dataset, noise, values, float(arr.mean()), std, int(arr.size))
    return cells


def _rank_and_test(column: Column, cells: list[Cell], done: pd.DataFrame, alpha: float) -> None:
    means = sorted({c.mean for c in cells}, reverse=True)
    for c in cells:
        c.place = means.index(c.mean) + 1
    best = max(cells, key=lambda c: c.mean)
    others = [c for c in cells if c is not best]
    for c in others:
        paired = matched_pairs(done, column.key, best.method, c.method)
        seeds = [s for s in paired if s in best.values and s in c.values]
        test = stats.paired_ttest([best.values[s] for s in seeds], [c.values[s] for s in seeds])
        c.n_paired, c.p_value, c.mean_diff, c.ci95 = test.n, test.p_value, test.mean_diff, test.ci95
        c.effect_dz, c.test_note = test.effect_dz, test.reason
    for c, adj in zip(others, stats.holm([c.p_value for c in others])):
        c.p_holm = adj
        c.significant = None if adj is None else adj < alpha


def _across(cells: dict[tuple[str, str, str], Cell], methods: list[str], columns: list[Column],
            alpha: float) -> AcrossSettings | None:
    complete = [col for col in columns if all((m, *col.key) in cells for m in methods)]
    if len(methods) < 2 or not complete:
        return None
    scores = np.array([[cells[(m, *col.key)].mean for m in methods] for col in complete])
    ranks = dict(zip(methods, map(float, stats.average_ranks(scores))))
    friedman, note = None, ""
    if len(methods) < 3:
        note = "Friedman not run: it needs at least 3 methods"
    elif len(complete) < 2:
        note = "Friedman not run: it needs at least 2 settings"
    else:
        friedman = stats.friedman_iman_davenport(scores)
        if friedman.indicative:
            note = f"indicative only: {len(complete)} settings < {stats.MIN_SETTINGS_FRIEDMAN}"
    wilcoxon = stats.pairwise_wilcoxon(scores, methods, alpha)
    cd = stats.nemenyi_cd(len(methods), len(complete), alpha) if len(methods) >= 2 else None
    return AcrossSettings(methods, [c.key for c in complete], ranks, friedman, note, wilcoxon, cd)


def _provenance(done: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per method: hyperparameter -> provenance tag(s) seen in its runs."""
    out: dict[str, dict[str, set[str]]] = {}
    for method, text in zip(done["method"], done["hparam_sources"].fillna("{}")):
        for name, source in json.loads(text or "{}").items():
            out.setdefault(method, {}).setdefault(name, set()).add(str(source))
    return {m: {k: "/".join(sorted(v)) for k, v in sorted(d.items())} for m, d in sorted(out.items())}


def _protocols(done: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """The protocol of each (method, dataset, noise) cell's runs ("a + b" when they differ)."""
    if "protocol" not in done:
        return {}
    grouped = done.groupby(["method", "dataset", "noise"])["protocol"]
    return {key: " + ".join(sorted({str(p) for p in values})) for key, values in grouped}


def build_leaderboard(frame: pd.DataFrame, metric: str = "val", alpha: float = 0.05,
                      datasets: Sequence[str] | None = None, noises: Sequence[str] | None = None,
                      methods: Sequence[str] | None = None, published: bool = True) -> Leaderboard:
    """Compute the leaderboard of a results frame (:func:`noisybench.results.load_results`).

    Parameters
    ----------
    frame
        One row per run.
    metric
        ``val`` (default), ``last``, ``mean-last`` or ``best`` (test-selected, leaky), or a column name.
    alpha
        Significance level of the paired t-tests (Holm-corrected per column) and pairwise Wilcoxon tests.
    datasets, noises, methods
        Shell-style patterns selecting columns and rows (all when None).
    published
        Attach matching published numbers (``noisybench/reporting/published.csv``).

    Returns
    -------
    Leaderboard
    """
    if not 0 < alpha < 1:
        raise NoisybenchError(f"--alpha must be in (0, 1), got {alpha}")
    column = metric_column(metric)
    if frame.empty:
        raise NoisybenchError("no finished runs to report; run `noisybench run GRID --out DIR` first")
    frame = filter_runs(frame, datasets, noises, methods)
    done = frame[frame["status"] == "done"]
    if done.empty:
        raise NoisybenchError("no successful runs to report (all selected runs failed); see `noisybench status DIR`")
    done, tuned = select_tuned(done)
    done, superseded = drop_superseded(done)
    cells = _cells(done, column)
    method_order = sorted({c.method for c in cells.values()}, key=lambda m: (m != "ce", m))  # baseline first
    columns = [c for c in _columns(done) if any((m, *c.key) in cells for m in method_order)]
    for col in columns:
        in_col = [cells[(m, *col.key)] for m in method_order if (m, *col.key) in cells]
        _rank_and_test(col, in_col, done, alpha)
    board = Leaderboard(metric=column, alpha=alpha, methods=method_order, columns=columns, cells=cells,
                        across=_across(cells, method_order, columns, alpha),
                        failed_runs=int(frame["status"].isin(["failed", "corrupt"]).sum()),
                        provenance=_provenance(done))
    board.warnings = superseded + check_protocol(done, board)
    board.protocols = _protocols(done)
    board.tuned = tuned
    if published:
        from noisybench.reporting.published import match_published

        board.published = match_published(board)
    return board
