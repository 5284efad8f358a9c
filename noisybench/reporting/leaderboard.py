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
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from noisybench.errors import NoisybenchError
from noisybench.metrics import LEAKY_METRICS, METRIC_TITLES, METRICS, metric_column
from noisybench.noise import noise_display, noise_sort_key
from noisybench.reporting import stats
from noisybench.reporting.guardrails import check_protocol, drop_superseded, matched_pairs, select_tuned
from noisybench.reporting.tuning import TuningSummary, split_trials, summarize

#: Statuses of runs whose record is of no use (damaged, or another user's that this user may not read).
UNUSABLE = ("corrupt", "unreadable")


@dataclass
class Column:
    """One leaderboard column: a dataset under one noise setting."""

    dataset: str
    noise: str
    family: str | None
    rate: float | None
    dataset_display: str = ""
    noise_display: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """``(dataset, noise)``."""
        return self.dataset, self.noise

    @property
    def label(self) -> str:
        """Header text of the noise setting, e.g. ``Sym. 50 %`` or ``Human (aggre)``."""
        return self.noise_display or noise_display(self.noise)

    @property
    def dataset_label(self) -> str:
        """Printed dataset name, e.g. ``CIFAR-10``."""
        return self.dataset_display or self.dataset


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
    exact: dict[int, Fraction] | None = None
    second: bool = False
    alone: bool = False

    @property
    def not_worse(self) -> bool:
        """True when tested against the best and the difference is not significant (gets the marker)."""
        return self.significant is False

    @property
    def best(self) -> bool:
        """Best of its column (bold); never in a column with a single method."""
        return self.place == 1 and not self.alone

    @property
    def not_tested(self) -> bool:
        """Not the best, but no test against the best was run (too few matched seeds): gets its own mark."""
        return self.place > 1 and self.p_value is None

    @property
    def exact_mean(self) -> Fraction | None:
        """Mean accuracy (percent) as an exact fraction when the runs recorded correct / total counts."""
        if not self.exact:
            return None
        return sum(self.exact.values(), Fraction(0)) / len(self.exact)

    @property
    def score(self) -> Fraction | float:
        """What ranks and ties compare: the exact mean when known, else the float mean."""
        exact = self.exact_mean
        return exact if exact is not None else self.mean


@dataclass
class AcrossSettings:
    """Ranks and omnibus/post-hoc tests over the settings every method covers.

    ``cd`` (the Nemenyi critical difference) is only set when Friedman ran (3 or more methods);
    ``cd_exceeded`` lists the pairs ``(a, b, rank difference)`` whose average ranks differ by more than it.
    """

    methods: list[str]
    settings: list[tuple[str, str]]
    ranks: dict[str, float]
    friedman: stats.FriedmanResult | None
    friedman_note: str
    wilcoxon: stats.PairwiseWilcoxon
    cd: float | None
    cd_exceeded: list[tuple[str, str, float]] = field(default_factory=list)
    exact: bool = False


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
    tuned: list[str] = field(default_factory=list)  # which [sweep] point each swept cell uses (records before [tune])
    tuning: TuningSummary | None = None  # how the [tune] stage chose each tuned cell's values
    published: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)
    failed_runs: int = 0
    corrupt_runs: list[str] = field(default_factory=list)  # "run_id: why" of unreadable result files
    method_names: dict[str, str] = field(default_factory=dict)
    exact: bool = False  # cells compared as exact correct/total fractions
    protocols: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (method, dataset, noise) -> protocol

    @property
    def metric_name(self) -> str:
        """CLI name of the metric (``val``, ``last``, ``mean-last``, ``best``)."""
        return {v: k for k, v in METRICS.items()}.get(self.metric, self.metric)

    @property
    def leaky(self) -> bool:
        """True when the metric selects on the test set."""
        return self.metric in LEAKY_METRICS

    def method_label(self, method: str) -> str:
        """Printed name of a method (``DivideMix``), the id when it has none."""
        return self.method_names.get(method) or method

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

    def shows_second(self) -> bool:
        """Whether any column underlines a second best (only columns with 3 or more methods do)."""
        return any(c.second for c in self.cells.values())


def noise_label(noise: str) -> str:
    """Readable noise setting: ``sym:0.5`` -> ``Sym. 50 %``, ``human:aggre`` -> ``Human (aggre)``."""
    return noise_display(noise)


def _select(values: pd.Series, patterns: Sequence[str] | None, what: str, option: str) -> pd.Series:
    if not patterns:
        return pd.Series(True, index=values.index)
    present = sorted({str(v) for v in values.dropna()})
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(v, p) for v in present)]
    if unmatched:
        raise NoisybenchError(f"{option}: {', '.join(map(repr, unmatched))} matches no {what} in the results; "
                              f"available: {', '.join(present)}")
    return values.map(lambda v: any(fnmatch.fnmatchcase(str(v), p) for p in patterns))


def filter_runs(frame: pd.DataFrame, datasets: Sequence[str] | None = None, noises: Sequence[str] | None = None,
                methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Keep runs whose dataset / noise / method match any of the shell-style patterns given.

    Every pattern must match something: a misspelt name is an error, not silently dropped.
    """
    keep = _select(frame["dataset"], datasets, "dataset", "--datasets")
    keep &= _select(frame["noise"], noises, "noise setting", "--noise")
    keep &= _select(frame["method"], methods, "method", "--methods")
    return frame[keep]


def _display(done: pd.DataFrame, column: str, key: str) -> dict[str, str]:
    if column not in done.columns:
        return {}
    return {str(k): str(v) for k, v in zip(done[key], done[column]) if isinstance(v, str) and v}


def _columns(done: pd.DataFrame) -> list[Column]:
    """Columns grouped by dataset (first appearance in name order), settings in natural order within each."""
    datasets, noises = _display(done, "dataset_display", "dataset"), _display(done, "noise_display", "noise")
    keys = done[["dataset", "noise", "noise_family", "noise_rate"]].drop_duplicates(["dataset", "noise"])
    cols = [Column(r.dataset, r.noise, r.noise_family, None if pd.isna(r.noise_rate) else float(r.noise_rate),
                   datasets.get(r.dataset, r.dataset), noises.get(r.noise, noise_display(r.noise)))
            for r in keys.itertuples()]
    return sorted(cols, key=lambda c: (c.dataset, noise_sort_key(c.noise)))


def _exact_values(group: pd.DataFrame, column: str) -> dict[int, Fraction] | None:
    """Per-seed percent as exact fractions from ``<column>_correct`` / ``_total``; None if any run lacks them."""
    correct, total = f"{column}_correct", f"{column}_total"
    if correct not in group.columns or total not in group.columns:
        return None
    if group[correct].isna().any() or group[total].isna().any() or (group[total] <= 0).any():
        return None
    return {int(s): Fraction(100 * int(c), int(n)) for s, c, n in zip(group["seed"], group[correct], group[total])}


def _cells(done: pd.DataFrame, column: str) -> dict[tuple[str, str, str], Cell]:
    cells = {}
    for (method, dataset, noise), group in done.groupby(["method", "dataset", "noise"], sort=False):
        group = group.dropna(subset=[column])
        if group.empty:
            continue
        exact = _exact_values(group, column)
        values = {int(s): float(v) for s, v in zip(group["seed"], group[column])}
        arr = np.array(list(values.values()))
        std = float(arr.std(ddof=1)) if arr.size >= 2 else math.nan
        cell = Cell(method, dataset, noise, values, float(arr.mean()), std, int(arr.size), exact=exact)
        if exact is not None:
            cell.mean = float(cell.exact_mean)  # type: ignore[arg-type]
        cells[(method, dataset, noise)] = cell
    return cells


def _rank_and_test(column: Column, cells: list[Cell], done: pd.DataFrame, alpha: float) -> None:
    scores = sorted({c.score for c in cells}, reverse=True)
    for c in cells:
        c.place = scores.index(c.score) + 1
        c.second = c.place == 2 and len(cells) >= 3
        c.alone = len(cells) < 2
    best = max(cells, key=lambda c: c.score)
    others = [c for c in cells if c is not best]
    for c in others:
        paired = matched_pairs(done, column.key, best.method, c.method)
        seeds = [s for s in paired if s in best.values and s in c.values]
        exact = best.exact is not None and c.exact is not None
        a = [float(best.exact[s]) if exact else best.values[s] for s in seeds]  # type: ignore[index]
        b = [float(c.exact[s]) if exact else c.values[s] for s in seeds]  # type: ignore[index]
        test = stats.paired_ttest(a, b)
        c.n_paired, c.p_value, c.mean_diff, c.ci95 = test.n, test.p_value, test.mean_diff, test.ci95
        c.effect_dz, c.test_note = test.effect_dz, test.reason
    for c, adj in zip(others, stats.holm([c.p_value for c in others])):
        c.p_holm = adj
        c.significant = None if adj is None else adj < alpha


def _scores(cells: dict[tuple[str, str, str], Cell], methods: list[str], complete: list[Column]) -> np.ndarray:
    """Settings x methods: exact fractions (object array) when every cell has counts, else floats."""
    rows = [[cells[(m, *col.key)] for m in methods] for col in complete]
    if all(c.exact for row in rows for c in row):
        return np.array([[c.exact_mean for c in row] for row in rows], dtype=object)
    return np.array([[c.mean for c in row] for row in rows], dtype=float)


def _across(cells: dict[tuple[str, str, str], Cell], methods: list[str], columns: list[Column],
            alpha: float) -> AcrossSettings | None:
    complete = [col for col in columns if all((m, *col.key) in cells for m in methods)]
    if len(methods) < 2 or not complete:
        return None
    scores = _scores(cells, methods, complete)
    ranks = dict(zip(methods, map(float, stats.average_ranks(scores))))
    friedman, note, cd = None, "", None
    if len(methods) < 3:
        note = "Friedman and the Nemenyi critical difference not computed: they need at least 3 methods"
    elif len(complete) < 2:
        note = "Friedman and the Nemenyi critical difference not computed: they need at least 2 settings"
    else:
        friedman = stats.friedman_iman_davenport(scores)
        cd = stats.nemenyi_cd(len(methods), len(complete), alpha)
        if friedman.indicative:
            note = f"indicative only: {len(complete)} settings < {stats.MIN_SETTINGS_FRIEDMAN}"
    exceeded = [] if cd is None else [
        (a, b, abs(ranks[a] - ranks[b])) for i, a in enumerate(methods) for b in methods[i + 1:]
        if abs(ranks[a] - ranks[b]) > cd]
    exceeded.sort(key=lambda e: -e[2])
    wilcoxon = stats.pairwise_wilcoxon(scores, methods, alpha)
    return AcrossSettings(methods, [c.key for c in complete], ranks, friedman, note, wilcoxon, cd, exceeded,
                          exact=scores.dtype == object)


def _provenance(done: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per method: hyperparameter -> provenance tag(s) seen in its runs."""
    out: dict[str, dict[str, set[str]]] = {}
    for method, text in zip(done["method"], done["hparam_sources"].fillna("{}")):
        for name, source in json.loads(text or "{}").items():
            out.setdefault(method, {}).setdefault(name, set()).add(str(source))
    return {m: {k: "/".join(sorted(v)) for k, v in sorted(d.items())} for m, d in sorted(out.items())}


def _corrupt(frame: pd.DataFrame) -> list[str]:
    if "status" not in frame.columns:
        return []
    bad = frame[frame["status"].isin(UNUSABLE)]
    return [f"{r}: {why}" for r, why in zip(bad["run_id"], bad["reason"])]


#: What a table without noisy-validation selection shows instead (runs with ``val_fraction = 0``).
FALLBACK_METRIC = "last"


def _without_validation(done: pd.DataFrame, column: str) -> tuple[str, list[str]]:
    """``val`` where some runs hold out no validation split (``val_fraction = 0``): the column every run records
    instead (:data:`FALLBACK_METRIC`), and the one-line warning saying so."""
    if column != METRICS["val"] or column not in done.columns or not done[column].isna().any():
        return column, []
    missing = int(done[column].isna().sum())
    fallback = METRICS[FALLBACK_METRIC]
    return fallback, [f"{missing} of {len(done)} runs have no validation split (val_fraction = 0): this table reports "
                      f"{FALLBACK_METRIC} ({METRIC_TITLES[fallback]}) for every run instead of val; choose with "
                      "--metric last or mean-last"]


def _check_metric(done: pd.DataFrame, column: str, metric: str) -> None:
    if column in done.columns and done[column].notna().any():
        return
    title = METRIC_TITLES.get(column, column)
    recorded = [name for name, col in METRICS.items() if col in done.columns and done[col].notna().any()]
    hint = f"choose one the runs record: {', '.join(f'--metric {m}' for m in recorded)}" if recorded else \
        "the runs record no metric"
    raise NoisybenchError(f"--metric {metric}: no selected run records {column!r} ({title}); {hint}")


def _protocols(done: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """The protocol of each (method, dataset, noise) cell's runs ("a + b" when they differ)."""
    if "protocol" not in done:
        return {}
    grouped = done.groupby(["method", "dataset", "noise"])["protocol"]
    return {key: " + ".join(sorted({str(p) for p in values})) for key, values in grouped}


def build_leaderboard(frame: pd.DataFrame, metric: str = "val", alpha: float = 0.05,
                      datasets: Sequence[str] | None = None, noises: Sequence[str] | None = None,
                      methods: Sequence[str] | None = None, published: bool = True) -> Leaderboard:
    """Compute the leaderboard of a results frame (:func:`noisybench.store.results.load_results`).

    Parameters
    ----------
    frame
        One row per run. Display columns (``method_display``, ``dataset_display``, ``noise_display``)
        are used when present; ``<metric>_correct`` / ``<metric>_total`` make ranks and ties exact.
    metric
        ``val`` (default), ``last``, ``mean-last`` or ``best`` (test-selected, leaky), or a column name.
    alpha
        Significance level of the paired t-tests (Holm-corrected per column) and pairwise Wilcoxon tests.
    datasets, noises, methods
        Shell-style patterns selecting columns and rows (all when None); each must match something.
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
    corrupt = _corrupt(frame)
    frame, trials = split_trials(filter_runs(frame[~frame["status"].isin(UNUSABLE)], datasets, noises, methods))
    done = frame[frame["status"] == "done"]
    if done.empty and not trials.empty:
        raise NoisybenchError("only tuning-stage runs so far: the evaluation stage has not run yet (run the grid "
                              "again once its trials have finished); `noisybench report DIR --format tuning` shows "
                              "the trials")
    if done.empty:
        raise NoisybenchError("no successful runs to report (all selected runs failed); see `noisybench status DIR`")
    column, fallback = _without_validation(done, column)
    _check_metric(done, column, metric)
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
                        failed_runs=int((frame["status"] == "failed").sum()) + len(corrupt), corrupt_runs=corrupt,
                        provenance=_provenance(done), method_names=_display(done, "method_display", "method"),
                        exact=all(c.exact for c in cells.values()))
    board.warnings = fallback + superseded + check_protocol(done, board)
    board.protocols = _protocols(done)
    board.tuned = tuned
    board.tuning = summarize(trials)
    if published:
        from noisybench.reporting.published import match_published

        board.published = match_published(board)
    return board
