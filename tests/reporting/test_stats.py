"""Statistics: every p-value is checked against scipy (or an independent computation) in the test."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as ss

from noisybench.reporting import stats


def holm_reference(p: list[float]) -> list[float]:
    """Textbook Holm step-down, written independently of the package."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    previous = 0.0
    for step, i in enumerate(order):
        previous = max(previous, min(1.0, (m - step) * p[i]))
        adjusted[i] = previous
    return adjusted


def test_paired_ttest_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    for n in (3, 5, 8):
        a, b = rng.normal(80, 2, n), rng.normal(79, 2, n)
        result = stats.paired_ttest(a, b)
        ref = ss.ttest_rel(a, b)
        assert result.p_value == pytest.approx(ref.pvalue, rel=1e-12)
        assert result.statistic == pytest.approx(ref.statistic, rel=1e-12)
        d = a - b
        half = ss.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)
        assert result.ci95 == pytest.approx((d.mean() - half, d.mean() + half))
        assert result.effect_dz == pytest.approx(d.mean() / d.std(ddof=1))


def test_paired_ttest_refuses_small_n_and_handles_constant_differences() -> None:
    small = stats.paired_ttest([1.0, 2.0], [0.0, 1.0])
    assert small.p_value is None and "n=2" in small.reason
    assert stats.paired_ttest([1, 2, 3], [1, 2, 3]).p_value == 1.0
    assert stats.paired_ttest([2, 3, 4], [1, 2, 3]).p_value == 0.0


def test_holm_matches_reference_and_skips_none() -> None:
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    rng = np.random.default_rng(1)
    p = list(rng.uniform(0, 0.2, 7))
    assert stats.holm(p) == pytest.approx(holm_reference(p))
    mixed = stats.holm([0.02, None, 0.5])
    assert mixed[1] is None and mixed[0] == pytest.approx(0.04) and mixed[2] == pytest.approx(0.5)


def test_average_ranks_best_is_one_and_ties_average() -> None:
    scores = np.array([[90.0, 80.0, 70.0], [85.0, 85.0, 60.0]])
    assert stats.average_ranks(scores) == pytest.approx([1.25, 1.75, 3.0])


def test_friedman_iman_davenport_matches_scipy_and_formula() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(0, 1, (7, 4)) + np.array([0.0, 0.3, 0.6, 0.9])
    result = stats.friedman_iman_davenport(scores)
    chi2, p_chi2 = ss.friedmanchisquare(*scores.T)
    n, k = scores.shape
    f_id = (n - 1) * chi2 / (n * (k - 1) - chi2)
    assert result.chi2 == pytest.approx(chi2) and result.p_chi2 == pytest.approx(p_chi2)
    assert result.f_id == pytest.approx(f_id)
    assert result.p_value == pytest.approx(ss.f.sf(f_id, k - 1, (k - 1) * (n - 1)))
    assert not result.indicative
    assert stats.friedman_iman_davenport(scores[:4]).indicative


def test_friedman_perfectly_consistent_ranks_use_exact_permutation_p() -> None:
    scores = np.array([[3.0, 2.0, 1.0]] * 3)
    result = stats.friedman_iman_davenport(scores)
    assert result.f_id is None and "exact" in result.p_method
    # Brute force over all 6^3 rank configurations: P(chi2 >= observed) under H0.
    perms = list(itertools.permutations([1, 2, 3]))
    observed = ss.friedmanchisquare(*scores.T).statistic
    hits = sum(ss.friedmanchisquare(*np.array(c).T).statistic >= observed - 1e-9
               for c in itertools.product(perms, repeat=3))
    assert result.p_value == pytest.approx(hits / len(perms) ** 3) == pytest.approx(6.0 ** -2)
    assert result.p_chi2 == pytest.approx(0.0498, abs=1e-4)  # landscape §6.1


def test_friedman_consistent_with_ties_uses_monte_carlo_permutation() -> None:
    scores = np.array([[2.0, 2.0, 1.0]] * 4)
    result = stats.friedman_iman_davenport(scores)
    assert result.f_id is None and "permutation" in result.p_method
    # Exact: the two tied methods stay tied, so only the position of the odd one out matters: (1/3)^(N-1).
    assert result.p_value == pytest.approx(3.0 ** -3, abs=0.01)


def test_pairwise_wilcoxon_matches_scipy_with_holm() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(0, 1, (9, 3)) + np.array([0.0, 0.8, 1.6])
    names = ["a", "b", "c"]
    result = stats.pairwise_wilcoxon(scores, names)
    assert not result.reason and len(result.pairs) == 3
    raw = [ss.wilcoxon(scores[:, i], scores[:, j]).pvalue for i, j in itertools.combinations(range(3), 2)]
    assert [p["p_value"] for p in result.pairs] == pytest.approx(raw)
    assert [p["p_holm"] for p in result.pairs] == pytest.approx(holm_reference(raw))
    assert [p["significant"] for p in result.pairs] == [h < 0.05 for h in holm_reference(raw)]


def test_pairwise_wilcoxon_refused_below_six_settings() -> None:
    result = stats.pairwise_wilcoxon(np.ones((5, 3)), ["a", "b", "c"])
    assert result.pairs == [] and "5 settings < 6" in result.reason


def test_nemenyi_cd_matches_demsar_table() -> None:
    assert stats.nemenyi_cd(5, 5) == pytest.approx(2.73, abs=0.01)
    assert stats.nemenyi_cd(8, 20) == pytest.approx(2.35, abs=0.01)
    assert stats.nemenyi_cd(3, 10) == pytest.approx(2.343 * math.sqrt(3 * 4 / 60), abs=1e-3)
