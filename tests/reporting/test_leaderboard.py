"""The leaderboard model on synthetic stores: cells, places, per-column tests, across-settings statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as ss

from noisybench.errors import NoisybenchError
from noisybench.reporting.leaderboard import build_leaderboard, noise_label
from noisybench.store.results import load_results
from tests.reporting.conftest import SYNTHETIC, write_run
from tests.reporting.test_stats import holm_reference


def test_cells_are_mean_sample_std_and_n(synthetic_store: Path) -> None:
    board = build_leaderboard(load_results(synthetic_store))
    assert board.methods == ["ce", "co_teaching", "gce"]
    # natural order: noise family (sym before asym), then rate
    assert [c.key for c in board.columns] == [("digits", "sym:0.2"), ("digits", "sym:0.5"), ("digits", "asym:0.4"),
                                             ("mnist1d", "sym:0.2")]
    assert [c.label for c in board.columns] == ["Sym. 20 %", "Sym. 50 %", "Asym. 40 %", "Sym. 20 %"]
    assert board.method_label("gce") == "GCE" and board.method_label("co_teaching") == "co_teaching"
    for method, settings in SYNTHETIC.items():
        for (dataset, noise), values in settings.items():
            cell = board.cells[(method, dataset, noise)]
            assert cell.mean == pytest.approx(np.mean(values))
            assert cell.std == pytest.approx(np.std(values, ddof=1))
            assert cell.n == 3 and sorted(cell.values) == [1, 2, 3]


def test_places_and_every_p_value_against_scipy(synthetic_store: Path) -> None:
    board = build_leaderboard(load_results(synthetic_store))
    for col in board.columns:
        cells = [board.cell(m, col) for m in board.methods]
        means = sorted((c.mean for c in cells), reverse=True)
        best = next(c for c in cells if c.mean == means[0])
        assert best.place == 1 and best.p_value is None and best.significant is None
        assert next(c for c in cells if c.mean == means[1]).place == 2
        others = [c for c in cells if c is not best]
        raw = [ss.ttest_rel([best.values[s] for s in (1, 2, 3)], [c.values[s] for s in (1, 2, 3)]).pvalue
               for c in others]
        assert [c.p_value for c in others] == pytest.approx(raw)
        assert [c.p_holm for c in others] == pytest.approx(holm_reference(raw))
        for c, h in zip(others, holm_reference(raw)):
            assert c.significant == (h < 0.05) and c.not_worse == (h >= 0.05)
    # digits asym 40%: gce 70.5 best, ce 70.17 is not distinguishable, co_teaching 66.17 is.
    col = board.columns[2]
    assert board.cell("ce", col).not_worse and not board.cell("co_teaching", col).not_worse


def test_alpha_is_configurable(synthetic_store: Path) -> None:
    frame = load_results(synthetic_store)
    strict = build_leaderboard(frame, alpha=0.001)
    loose = build_leaderboard(frame, alpha=0.5)
    n_strict = sum(c.not_worse for c in strict.cells.values())
    n_loose = sum(c.not_worse for c in loose.cells.values())
    assert n_strict > n_loose
    with pytest.raises(NoisybenchError, match="alpha"):
        build_leaderboard(frame, alpha=1.5)


def test_no_test_below_three_seeds(tmp_path: Path) -> None:
    for method, values in {"ce": [50.0, 52.0], "gce": [60.0, 61.0]}.items():
        for seed, v in enumerate(values, 1):
            write_run(tmp_path, method, "blobs", "sym:0.2", seed, v)
    board = build_leaderboard(load_results(tmp_path))
    ce = board.cells[("ce", "blobs", "sym:0.2")]
    assert ce.p_value is None and ce.significant is None and not ce.not_worse and "not tested" in ce.test_note
    assert ce.not_tested and not board.cells[("gce", "blobs", "sym:0.2")].not_tested
    from noisybench.reporting.formats import NOT_TESTED, cell_text, legend
    from noisybench.reporting.latex import latex_legend, render_latex

    assert f"{NOT_TESTED}: not tested (fewer than 3 seeds matched" in legend(board)
    assert cell_text(ce, False).endswith(NOT_TESTED) and "†" not in legend(board)  # no cell was tested
    assert "$^{\\ddagger}$: not tested" in latex_legend(board) and "51.00 & {\\scriptsize$\\pm$1.41}$^{\\ddagger}$" \
        in render_latex(board)


def test_across_settings_ranks_and_friedman(synthetic_store: Path) -> None:
    board = build_leaderboard(load_results(synthetic_store))
    a = board.across
    assert a is not None and len(a.settings) == 4
    scores = np.array([[board.cells[(m, *key)].mean for m in a.methods] for key in a.settings])
    ranks = np.mean([ss.rankdata(-row) for row in scores], axis=0)
    assert [a.ranks[m] for m in a.methods] == pytest.approx(ranks)
    assert a.friedman.p_chi2 == pytest.approx(ss.friedmanchisquare(*scores.T).pvalue)
    assert a.friedman.indicative and "indicative" in a.friedman_note
    assert a.wilcoxon.pairs == [] and "4 settings < 6" in a.wilcoxon.reason


def test_filters_select_rows_and_columns(synthetic_store: Path) -> None:
    frame = load_results(synthetic_store)
    board = build_leaderboard(frame, datasets=["digits"], noises=["sym:*"], methods=["ce", "g*"])
    assert board.methods == ["ce", "gce"]
    assert [c.key for c in board.columns] == [("digits", "sym:0.2"), ("digits", "sym:0.5")]
    with pytest.raises(NoisybenchError, match="'dividemix' matches no method in the results; available: ce, co_teac"):
        build_leaderboard(frame, methods=["dividemix"])
    with pytest.raises(NoisybenchError, match="--methods: 'nosuch' matches no method"):  # not silently dropped
        build_leaderboard(frame, methods=["ce", "nosuch"])


def test_metric_choice_and_unknown_metric(synthetic_store: Path) -> None:
    frame = load_results(synthetic_store)
    assert build_leaderboard(frame, "best").leaky
    assert build_leaderboard(frame, "mean-last").metric == "mean_last_k"
    with pytest.raises(NoisybenchError, match="Did you mean"):
        build_leaderboard(frame, "lats")


def test_noise_label() -> None:
    assert noise_label("sym:0.5") == "Sym. 50 %"
    assert noise_label("human:aggre") == "Human (aggre)"
    assert noise_label("none") == "Clean"


def test_six_settings_run_pairwise_wilcoxon_against_scipy(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    offsets = {"a": 0.0, "b": 1.0, "c": 3.0}
    for i in range(7):
        base = 60 + 5 * i
        for method, off in offsets.items():
            for seed in (1, 2, 3):
                write_run(tmp_path, method, f"d{i}", "sym:0.2", seed, base + off + float(rng.normal(0, 0.5)))
    board = build_leaderboard(load_results(tmp_path))
    a = board.across
    assert len(a.settings) == 7 and not a.wilcoxon.reason and not a.friedman.indicative
    scores = np.array([[board.cells[(m, *key)].mean for m in a.methods] for key in a.settings])
    raw = [ss.wilcoxon(scores[:, i], scores[:, j]).pvalue for i, j in ((0, 1), (0, 2), (1, 2))]
    assert [p["p_value"] for p in a.wilcoxon.pairs] == pytest.approx(raw)
    assert [p["p_holm"] for p in a.wilcoxon.pairs] == pytest.approx(holm_reference(raw))
    assert a.ranks == {"c": 1.0, "b": 2.0, "a": 3.0}
    # perfectly consistent ranks: Iman-Davenport is undefined, the exact permutation p is (3!)^(1-7)
    assert a.friedman.f_id is None and a.friedman.p_value == pytest.approx(6.0 ** -6)
    from noisybench.reporting.plots import cd_diagram

    fig = cd_diagram(board, "wilcoxon")
    assert "no significant difference (pairwise Wilcoxon signed-rank, Holm" in fig.get_suptitle()
    assert "INDICATIVE" not in fig.get_suptitle() and "CD =" not in [t.get_text() for t in fig.axes[0].texts]
    assert not a.wilcoxon.cannot_reach and a.wilcoxon.min_p_holm == pytest.approx(3 * 2 / 2 ** 7)


def test_baseline_ce_is_the_first_row(tmp_path) -> None:
    from noisybench.reporting.leaderboard import build_leaderboard
    from noisybench.store.results import load_results
    from tests.reporting.conftest import write_run

    for method, base in (("alr", 60.0), ("ce", 50.0), ("bmethod", 55.0)):
        for seed in (1, 2, 3):
            write_run(tmp_path, method, "blobs", "sym:0.2", seed, base + seed)
    assert build_leaderboard(load_results(tmp_path)).methods == ["ce", "alr", "bmethod"]
