"""Across settings: the CD diagram agrees with the CD it draws; tests that cannot reach alpha say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from noisybench.reporting import stats
from noisybench.reporting.formats import across_lines, render_json
from noisybench.reporting.leaderboard import build_leaderboard
from noisybench.reporting.plots import cd_diagram, cd_groups
from noisybench.store.results import load_results
from tests.reporting.conftest import write_run

METHODS = ["ce", "alr", "elr", "gce", "dividemix"]


@pytest.fixture
def eight_settings(tmp_path: Path) -> Path:
    """5 methods x 8 settings: DivideMix always first, CE always last, the middle three rotate."""
    middle = [["alr", "elr", "gce"], ["elr", "gce", "alr"], ["gce", "alr", "elr"]]
    for i in range(8):
        order = ["dividemix", *middle[i % 3], "ce"]
        for place, method in enumerate(order):
            for seed in (1, 2, 3):
                write_run(tmp_path, method, f"d{i}", "sym:0.2", seed, 90.0 - 3 * place + 0.1 * seed)
    return tmp_path


def test_nemenyi_bars_never_join_methods_further_apart_than_the_cd(eight_settings: Path) -> None:
    board = build_leaderboard(load_results(eight_settings))
    a = board.across
    assert a.cd == pytest.approx(stats.nemenyi_cd(5, 8))
    assert a.ranks["dividemix"] == 1.0 and a.ranks["ce"] == 5.0
    groups, meaning = cd_groups(board)
    assert groups and "Nemenyi CD" in meaning
    for group in groups:
        assert a.ranks[group[-1]] - a.ranks[group[0]] <= a.cd
    assert not any({"ce", "dividemix"} <= set(g) for g in groups)
    assert ("ce", "dividemix", 4.0) in a.cd_exceeded
    assert "pairs whose average ranks differ by more: CE–DivideMix (4.00)" in "\n".join(across_lines(board))
    fig = cd_diagram(board)
    assert "Nemenyi CD" in fig.get_label() and any(t.get_text().startswith("CD =") for t in fig.axes[0].texts)
    wilcoxon = cd_diagram(board, "wilcoxon")  # the alternative view: Wilcoxon-Holm cliques, no CD bar
    assert "Wilcoxon" in wilcoxon.get_label() and not any(t.get_text().startswith("CD =")
                                                          for t in wilcoxon.axes[0].texts)


def test_wilcoxon_holm_that_cannot_reach_alpha_says_so(eight_settings: Path) -> None:
    board = build_leaderboard(load_results(eight_settings))
    w = board.across.wilcoxon
    assert len(w.pairs) == 10 and w.cannot_reach and w.settings_needed == 9
    assert w.min_p_holm == pytest.approx(10 * 2 / 2 ** 8)  # 0.078 > 0.05
    assert min(p["p_holm"] for p in w.pairs) >= w.min_p_holm - 1e-12  # the bound holds for the real p-values
    text = "\n".join(across_lines(board))
    assert "cannot reach α = 0.05" in text and "0.078" in text and "needs ≥ 9 settings" in text
    assert "not significant" not in text  # one sentence, not ten "not significant" lines
    assert '"cannot_reach_alpha": true' in render_json(board)


def test_settings_needed_matches_landscape() -> None:  # landscape §6.1: n >= 7 for m = 2-3, 8 for 4-5, ...
    assert [stats.settings_needed(m, 0.05) for m in (1, 2, 3, 4, 5, 10, 28)] == [6, 7, 7, 8, 8, 9, 11]
    assert stats.wilcoxon_min_p(6) == pytest.approx(0.03125)


def test_two_methods_have_no_nemenyi_cd(tmp_path: Path) -> None:
    for i in range(3):
        for method, base in (("ce", 80.0), ("gce", 82.0)):
            for seed in (1, 2, 3):
                write_run(tmp_path, method, f"d{i}", "sym:0.2", seed, base + seed)
    board = build_leaderboard(load_results(tmp_path))
    assert board.across.cd is None and board.across.friedman is None
    text = "\n".join(across_lines(board))
    assert "Nemenyi critical difference (" not in text and "need at least 3 methods" in text
    assert cd_diagram(board) is None
