"""[sweep.<method>] tables: refused in grids (replaced by [tune]); swept runs stored before still report the point
with the best noisy validation, tagged `tuned`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from noisybench.config import load_grid
from noisybench.errors import ConfigError
from noisybench.orchestration.runner import execute_runs
from noisybench.plan import expand_grid
from noisybench.reporting.leaderboard import build_leaderboard
from noisybench.store.results import load_results
from tests.conftest import TINY_GRID


def _grid(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "g.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize("extra", ["[sweep.gce]\nq = [0.3, 0.7]\n", "[sweep.gce]\nq = [0.5]\n", "[sweep]\ngce = 3\n"])
def test_sweep_tables_are_refused_naming_tune(tmp_path: Path, extra: str) -> None:
    path = _grid(tmp_path, TINY_GRID + extra)
    with pytest.raises(ConfigError, match=r"\[sweep\] was replaced by \[tune\]") as info:
        load_grid(path)
    assert str(info.value).startswith(str(path)) and "seeds that [grid] does not score" in str(info.value)


def test_stored_sweeps_still_report_the_point_with_the_best_noisy_validation(tmp_path: Path) -> None:
    """Records of swept runs made before [tune] existed: the report keeps, per setting, the best point."""
    out = tmp_path / "out"
    runs = []
    for q in (0.3, 0.7):
        for run in expand_grid(load_grid(_grid(tmp_path, TINY_GRID + f"[methods.gce]\nq = {q}\n"))):
            if run.method == "gce":
                sources = {**run.hparam_sources, "q": "tuned"}
                runs.append(dataclasses.replace(run, sweep={"q": q}, hparam_sources=sources))
            elif q == 0.3:
                runs.append(run)
    execute_runs([r.to_dict() for r in runs], str(out))
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
