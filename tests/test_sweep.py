"""[sweep.<method>] tables: expansion with provenance `tuned`, selection on noisy validation only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from noisybench.cli import main
from noisybench.config import load_grid
from noisybench.errors import ConfigError
from noisybench.plan import expand_grid
from noisybench.reporting.leaderboard import build_leaderboard
from noisybench.results import load_results
from tests.conftest import TINY_GRID

SWEEP = TINY_GRID + "[sweep.gce]\nq = [0.3, 0.7]\n"


def _grid(tmp_path: Path, body: str):
    path = tmp_path / "g.toml"
    path.write_text(body)
    return path


def test_sweep_expands_every_value_with_provenance_tuned(tmp_path: Path) -> None:
    runs = expand_grid(load_grid(_grid(tmp_path, SWEEP)))
    gce = [r for r in runs if r.method == "gce"]
    assert len(runs) == 2 + 4 and sorted({r.hparams["q"] for r in gce}) == [0.3, 0.7]
    assert all(r.hparam_sources["q"] == "tuned" and r.sweep == {"q": r.hparams["q"]} for r in gce)
    assert all(r.sweep == {} for r in runs if r.method == "ce")


@pytest.mark.parametrize(
    ("extra", "match"),
    [("[sweep.gce]\nq = [0.5]\n", "at least two values"),
     ("[sweep.gce]\nqq = [0.3, 0.7]\n", "unknown hyperparameter 'qq'"),
     ("[sweep.elr]\nlam = [1, 3]\n", "sweeps a method the grid does not run"),
     ("[methods.gce]\nq = 0.5\n[sweep.gce]\nq = [0.3, 0.7]\n", "both fixed .* and swept")],
)
def test_bad_sweeps(tmp_path: Path, extra: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        expand_grid(load_grid(_grid(tmp_path, TINY_GRID + extra)))


def test_report_keeps_the_point_with_the_best_noisy_validation(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["run", str(_grid(tmp_path, SWEEP)), "--out", str(out), "--workers", "1"]) == 0
    frame = load_results(out)
    gce = frame[frame["method"] == "gce"]
    means = gce.groupby("sweep")["val_acc_best"].mean()
    board = build_leaderboard(frame)
    cell = next(c for (m, *_), c in board.cells.items() if m == "gce")
    assert cell.n == 2 and board.tuned and means.idxmax() in board.tuned[0]
    chosen = gce[gce["sweep"] == means.idxmax()]
    assert cell.mean == pytest.approx(chosen["val_selected"].mean())
    assert not any("repeat a seed" in w for w in board.warnings)  # sweep siblings are not "superseded"
    assert json.loads(chosen["hparam_sources"].iloc[0])["q"] == "tuned"
    assert "Tuned on noisy validation" in capsys.readouterr().out
