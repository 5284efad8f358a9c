"""Ties by exact counts: equal correct/total fractions rank as ties even when the float32 percents differ."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as ss

from noisybench.reporting import stats
from noisybench.reporting.leaderboard import build_leaderboard
from noisybench.store.results import load_results
from tests.reporting.conftest import float32_percent, write_run

TOTAL = 1080
#: method -> setting -> per-seed correct counts. CE and ALR tie exactly on d0 (3134/3240 each), yet the
#: float32 percents average to 96.72839244 vs 96.72839443.
COUNTS = {
    "ce": {"d0": (1044, 1044, 1046), "d1": (1000, 1001, 1002), "d2": (990, 990, 990)},
    "alr": {"d0": (1044, 1045, 1045), "d1": (1003, 1004, 1005), "d2": (980, 981, 982)},
    "gce": {"d0": (1060, 1061, 1062), "d1": (990, 991, 992), "d2": (995, 996, 997)},
}


@pytest.fixture
def counted_store(tmp_path: Path) -> Path:
    for method, settings in COUNTS.items():
        for dataset, counts in settings.items():
            for seed, correct in enumerate(counts, 1):
                write_run(tmp_path, method, dataset, "sym:0.2", seed, 0.0, counts=(correct, TOTAL))
    return tmp_path


def test_float_noise_would_break_the_tie() -> None:  # the premise of the exact comparison
    ce = np.mean([float32_percent(c, TOTAL) for c in COUNTS["ce"]["d0"]])
    alr = np.mean([float32_percent(c, TOTAL) for c in COUNTS["alr"]["d0"]])
    assert ce != alr and sum(COUNTS["ce"]["d0"]) == sum(COUNTS["alr"]["d0"])


def test_equal_counts_tie_in_places_ranks_and_friedman(counted_store: Path) -> None:
    frame = load_results(counted_store)
    assert {"val_selected_correct", "val_selected_total"} <= set(frame.columns)
    board = build_leaderboard(frame)
    ce, alr = board.cells[("ce", "d0", "sym:0.2")], board.cells[("alr", "d0", "sym:0.2")]
    assert board.exact and ce.exact_mean == alr.exact_mean == Fraction(100 * 3134, 3 * TOTAL)
    assert ce.place == alr.place == 2 and ce.mean == alr.mean
    exact = {m: [sum(COUNTS[m][d]) for d in ("d0", "d1", "d2")] for m in COUNTS}  # same total everywhere
    matrix = np.array([[exact[m][i] for m in board.methods] for i in range(3)], dtype=float)
    a = board.across
    assert a.exact
    assert [a.ranks[m] for m in board.methods] == pytest.approx(ss.rankdata(-matrix, axis=1).mean(axis=0))
    assert a.ranks["ce"] == pytest.approx((2.5 + 2 + 2) / 3)  # 2.5 on d0: a tie, not 3 vs 2
    assert a.friedman.chi2 == pytest.approx(ss.friedmanchisquare(*matrix.T).statistic, abs=1e-12)


def test_float_store_without_counts_ranks_on_floats(counted_store: Path) -> None:
    frame = load_results(counted_store)
    old = frame.drop(columns=[c for c in frame.columns if c.endswith(("_correct", "_total"))])
    board = build_leaderboard(old)  # an old store: floats, and the float noise shows
    assert not board.exact and not board.across.exact
    ce, alr = board.cells[("ce", "d0", "sym:0.2")], board.cells[("alr", "d0", "sym:0.2")]
    assert ce.place != alr.place


def test_exact_differences_make_equal_gaps_tie() -> None:
    scores = np.array([[Fraction(1, 3), Fraction(1, 6)], [Fraction(2, 3), Fraction(1, 2)]], dtype=object)
    d = stats.differences(scores, 0, 1)
    assert d[0] == d[1] and stats.differences(np.array([[0.1 + 0.2, 0.3]]), 0, 1)[0] != 0.0
    assert list(stats.rank_rows(np.array([[Fraction(1, 3), Fraction(2, 6), Fraction(1, 2)]], dtype=object))[0]) \
        == [2.5, 2.5, 1.0]
