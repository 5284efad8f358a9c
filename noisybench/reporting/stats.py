"""Statistics of the reporting layer (Demšar, JMLR 7:1-30, 2006; Benavoli, Corani & Mangili, JMLR 17(5), 2016).

Within one setting: paired t-tests over matched seeds against the column's best method, Holm-corrected.
Across settings: average ranks, Friedman with the Iman–Davenport correction, pairwise Wilcoxon
signed-rank tests with Holm, and the Nemenyi critical difference for the CD diagram.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class _LazyScipyStats:
    """``scipy.stats``, imported on first use: it takes a second to import, and a report served from the
    store's cache (an unchanged grid rerun) computes no test."""

    def __getattr__(self, name: str) -> Any:
        from scipy import stats as module

        return getattr(module, name)


stats = _LazyScipyStats()

#: Fewest matched seeds for a paired t-test: with fewer, no test is run.
MIN_SEEDS_TTEST = 3
#: Fewest settings for a Wilcoxon signed-rank test: below 6 it cannot reach p < 0.05 (its smallest p is 2/2^n).
MIN_SETTINGS_WILCOXON = 6
#: Below this many settings Friedman and the CD diagram are only "indicative".
MIN_SETTINGS_FRIEDMAN = 6
#: Monte Carlo resamples of the permutation Friedman test used when Iman–Davenport is undefined.
PERMUTATIONS = 10_000


@dataclass
class PairedTest:
    """A paired t-test of one method against a reference over matched seeds."""

    n: int
    mean_diff: float
    p_value: float | None
    statistic: float | None = None
    ci95: tuple[float, float] | None = None
    effect_dz: float | None = None
    reason: str = ""


def paired_ttest(a: Sequence[float], b: Sequence[float], min_n: int = MIN_SEEDS_TTEST) -> PairedTest:
    """Two-sided paired t-test of ``a - b`` (scipy ``ttest_rel``), refusing ``n < min_n``.

    Parameters
    ----------
    a, b
        Scores of two methods on the same seeds, in the same order.
    min_n
        Fewest pairs for which a p-value is returned.

    Returns
    -------
    PairedTest
        ``p_value`` is None (with ``reason``) when not testable. When every difference is equal the
        t statistic is undefined: p = 1 if they are all zero, else p = 0 (a constant nonzero gap).
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    if n < min_n:
        return PairedTest(n=n, mean_diff=mean, p_value=None, reason=f"n={n} matched seeds < {min_n}: not tested")
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
        return PairedTest(n=n, mean_diff=mean, p_value=p, statistic=None, ci95=(mean, mean), effect_dz=None,
                          reason="all differences equal")
    result = stats.ttest_rel(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return PairedTest(n=n, mean_diff=mean, p_value=float(result.pvalue), statistic=float(result.statistic),
                      ci95=(mean - half, mean + half), effect_dz=mean / sd)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values; ``None`` entries stay None and do not count in m.

    The adjusted value of the i-th smallest of m p-values is ``max_{j<=i} min(1, (m - j + 1) p_(j))``,
    so a hypothesis is rejected at level alpha exactly when its adjusted p is below alpha.
    """
    indexed = [(p, i) for i, p in enumerate(p_values) if p is not None]
    indexed.sort()
    m = len(indexed)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def rank_rows(scores: np.ndarray) -> np.ndarray:
    """Rank of each method (columns) within each setting (rows); 1 = highest, ties averaged.

    ``scores`` may be an object array of :class:`fractions.Fraction`: then ties are exact.
    """
    scores = np.asarray(scores)
    if scores.dtype != object:
        scores = scores.astype(float)
    return np.vstack([stats.rankdata(-row, method="average") for row in scores]).astype(float)


def average_ranks(scores: np.ndarray) -> np.ndarray:
    """Average rank of each method (columns) over settings (rows); rank 1 = highest score, ties averaged."""
    return rank_rows(scores).mean(axis=0)


def differences(scores: np.ndarray, i: int, j: int) -> np.ndarray:
    """``scores[:, i] - scores[:, j]`` as floats, subtracted exactly first when the scores are fractions."""
    scores = np.asarray(scores)
    return np.array([float(a - b) for a, b in zip(scores[:, i], scores[:, j])], dtype=float)


@dataclass
class FriedmanResult:
    """Friedman test over N settings (blocks) and k methods."""

    n_settings: int
    k_methods: int
    chi2: float
    p_chi2: float
    f_id: float | None
    p_value: float
    p_method: str
    indicative: bool


def friedman_iman_davenport(scores: np.ndarray, seed: int = 0) -> FriedmanResult:
    """Friedman χ² (scipy, tie-corrected) with the Iman–Davenport F correction.

    Parameters
    ----------
    scores
        N × k array: rows are settings, columns methods (higher is better).
    seed
        Seed of the Monte Carlo permutation test used when F is undefined.

    Returns
    -------
    FriedmanResult
        ``p_value`` is the Iman–Davenport p. When ranks are perfectly consistent (χ² = N(k − 1)) F is
        undefined; the exact permutation p ``(k!)^(1 - N)`` is used if no block has ties, else a
        Monte Carlo permutation p. ``indicative`` is True when N < 6.
    """
    scores = -rank_rows(scores)  # Friedman depends on within-row ranks only; this makes fraction ties exact
    n, k = scores.shape
    if k < 3 or n < 2:
        raise ValueError(f"Friedman needs >= 3 methods and >= 2 settings, got k={k}, N={n}")
    chi2, p_chi2 = stats.friedmanchisquare(*scores.T)
    chi2 = float(chi2)
    denominator = n * (k - 1) - chi2
    if denominator > 1e-9 * n * (k - 1):
        f_id = (n - 1) * chi2 / denominator
        p = float(stats.f.sf(f_id, k - 1, (k - 1) * (n - 1)))
        method = "Iman-Davenport F"
    elif all(len(set(row)) == k for row in scores):
        f_id, p, method = None, float(math.factorial(k)) ** (1 - n), "exact permutation (perfectly consistent ranks)"
    else:
        f_id, p = None, _permutation_friedman(scores, chi2, seed)
        method = f"permutation ({PERMUTATIONS} resamples)"
    return FriedmanResult(n_settings=n, k_methods=k, chi2=chi2, p_chi2=float(p_chi2), f_id=f_id, p_value=p,
                          p_method=method, indicative=n < MIN_SETTINGS_FRIEDMAN)


def _friedman_stat(ranks: np.ndarray) -> float:
    n, k = ranks.shape
    sums = ranks.sum(axis=0)
    return 12.0 / (n * k * (k + 1)) * float(((sums - n * (k + 1) / 2) ** 2).sum())


def _permutation_friedman(scores: np.ndarray, chi2: float, seed: int) -> float:
    ranks = np.vstack([stats.rankdata(-row) for row in scores])
    observed = _friedman_stat(ranks)
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(PERMUTATIONS):
        shuffled = np.vstack([rng.permutation(row) for row in ranks])
        hits += _friedman_stat(shuffled) >= observed - 1e-12
    return (hits + 1) / (PERMUTATIONS + 1)


@dataclass
class PairwiseWilcoxon:
    """Pairwise Wilcoxon signed-rank tests over settings, Holm-corrected, or the reason they were not run.

    ``min_p_holm`` is the smallest Holm-adjusted p any pair could reach with these settings (every
    difference nonzero and of one sign: exact p = 2 / 2^N, times the number of pairs); ``cannot_reach``
    is True when even that is not below alpha, so no pair can be declared different whatever the data.
    """

    pairs: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    min_p_holm: float | None = None
    cannot_reach: bool = False
    settings_needed: int | None = None


def wilcoxon_min_p(n: int) -> float:
    """Smallest two-sided exact Wilcoxon signed-rank p with ``n`` nonzero differences: ``2 / 2^n``."""
    return min(1.0, 2.0 / 2.0 ** n)


def settings_needed(m: int, alpha: float) -> int:
    """Fewest settings N for which ``m`` Holm-corrected Wilcoxon tests can reach ``p < alpha``."""
    n = 1
    while m * wilcoxon_min_p(n) >= alpha:
        n += 1
    return n


def pairwise_wilcoxon(scores: np.ndarray, methods: Sequence[str], alpha: float = 0.05) -> PairwiseWilcoxon:
    """Wilcoxon signed-rank (two-sided, scipy, ``zero_method="wilcox"``) for every pair, with Holm over all pairs.

    Refused (``reason`` set, no pairs) with fewer than 6 settings, where no p-value can fall below 0.05.
    A pair whose number of nonzero differences is below 6 gets ``p = None`` ("not testable"). ``scores``
    may hold fractions: differences are then exact, so equal gaps tie exactly.
    """
    n = np.asarray(scores).shape[0]
    m = len(methods) * (len(methods) - 1) // 2
    reach = {"min_p_holm": min(1.0, m * wilcoxon_min_p(n)), "settings_needed": settings_needed(m, alpha)}
    reach["cannot_reach"] = reach["min_p_holm"] >= alpha
    if n < MIN_SETTINGS_WILCOXON:
        return PairwiseWilcoxon(reason=f"pairwise Wilcoxon not run: {n} settings < {MIN_SETTINGS_WILCOXON} "
                                       "(with fewer, no p-value can fall below 0.05)", **reach)
    pairs: list[dict[str, Any]] = []
    for i, j in itertools.combinations(range(len(methods)), 2):
        d = differences(scores, i, j)
        nonzero = int(np.count_nonzero(d))
        p = None
        if nonzero >= MIN_SETTINGS_WILCOXON:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                p = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
        pairs.append({"a": methods[i], "b": methods[j], "n": n, "n_nonzero": nonzero, "p_value": p,
                      "mean_diff": float(d.mean())})
    for pair, adj in zip(pairs, holm([p["p_value"] for p in pairs])):
        pair["p_holm"] = adj
        pair["significant"] = adj is not None and adj < alpha
    return PairwiseWilcoxon(pairs=pairs, **reach)


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference ``q_alpha * sqrt(k (k + 1) / (6 N))`` in average ranks.

    ``q_alpha`` is the studentized range quantile (infinite df) divided by √2 (Demšar 2006).
    """
    if k < 2 or n < 1:
        raise ValueError(f"critical difference needs k >= 2 methods and N >= 1 settings, got k={k}, N={n}")
    q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6.0 * n))
