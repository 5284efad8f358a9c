"""Guardrail warnings: mixed protocols in a cell, unmatched seeds, different noise, leaky metric."""

from __future__ import annotations

from pathlib import Path

from scipy import stats as ss

from noisybench.reporting.leaderboard import build_leaderboard
from noisybench.store.results import load_results
from tests.reporting.conftest import write_run


def _pair(root: Path, seeds_gce: tuple[int, ...] = (1, 2, 3, 4), gce_kwargs: dict | None = None) -> None:
    gce_kwargs = gce_kwargs or {}
    for seed in (1, 2, 3, 4):
        write_run(root, "ce", "blobs", "sym:0.2", seed, 70.0 + seed)
    for seed in seeds_gce:
        write_run(root, "gce", "blobs", "sym:0.2", seed, 72.0 + seed * 1.5, **gce_kwargs.get(seed, {}))


def test_clean_store_has_only_the_low_power_warning(tmp_path: Path) -> None:
    _pair(tmp_path)
    board = build_leaderboard(load_results(tmp_path))
    assert len(board.warnings) == 1 and "n = 4 seeds (< 5)" in board.warnings[0]


def test_mixed_epochs_protocol_and_provenance_in_one_cell(tmp_path: Path) -> None:
    _pair(tmp_path, gce_kwargs={2: {"epochs": 9}, 3: {"protocol": "paper", "hparam_sources": {"lr_scale": "paper"}}})
    warnings = build_leaderboard(load_results(tmp_path)).warnings
    text = "\n".join(warnings)
    assert "gce on blobs sym:0.2: runs differ in epochs (4; 9)" in text
    assert "runs differ in protocol (paper; shared)" in text
    assert "runs differ in hparam_sources" in text and "paper" in text
    assert not any(w.startswith("ce on") for w in warnings)


def test_unmatched_seeds_warn_and_tests_use_common_seeds(tmp_path: Path) -> None:
    _pair(tmp_path, seeds_gce=(1, 2, 3, 7))
    board = build_leaderboard(load_results(tmp_path))
    assert any("seeds are not matched across methods (ce: [1, 2, 3, 4], gce: [1, 2, 3, 7])" in w
               for w in board.warnings)
    ce, gce = board.cells[("ce", "blobs", "sym:0.2")], board.cells[("gce", "blobs", "sym:0.2")]
    assert ce.n_paired == 3
    ref = ss.ttest_rel([gce.values[s] for s in (1, 2, 3)], [ce.values[s] for s in (1, 2, 3)]).pvalue
    assert ce.p_value == ref


def test_different_noise_realisations_are_not_paired(tmp_path: Path) -> None:
    _pair(tmp_path, gce_kwargs={1: {"noise_hash": "f" * 64}})
    board = build_leaderboard(load_results(tmp_path))
    assert any("seed 1: methods saw different noise realisations" in w for w in board.warnings)
    assert board.cells[("ce", "blobs", "sym:0.2")].n_paired == 3


def test_leaky_metric_and_failed_runs_warn(tmp_path: Path) -> None:
    _pair(tmp_path)
    write_run(tmp_path, "gce", "blobs", "sym:0.2", 9, 0.0, status="failed")
    board = build_leaderboard(load_results(tmp_path), metric="best")
    assert "selects the epoch on the test set" in board.warnings[0]
    assert any("1 failed run(s)" in w for w in board.warnings)
    assert board.cells[("gce", "blobs", "sym:0.2")].n == 4


def test_repeated_seed_with_another_config_keeps_the_newest_run(tmp_path: Path) -> None:
    from noisybench.reporting import ReportOptions
    from noisybench.store.report import report_dir as make_report

    _pair(tmp_path)
    # the same method and seed rerun later with another configuration (e.g. an edited grid): a new run id
    write_run(tmp_path, "ce", "blobs", "sym:0.2", 1, 99.0, hparams={"lr_scale": 2.0},
              finished_at="2026-02-01T00:00:00+00:00")
    _, board = make_report(tmp_path, ReportOptions())
    ce = board.cells[("ce", "blobs", "sym:0.2")]
    assert ce.n == 4 and ce.values[1] == 99.0
    assert any("1 older run(s) in 1 cell(s) repeat a seed with another configuration" in w for w in board.warnings)
    assert any("ce on blobs sym:0.2: runs differ in hparams" in w for w in board.warnings)
