"""``noisybench report`` paths that used to end in a traceback or in silence: each is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from noisybench.cli import main


def _error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("noisybench: error: "), captured.err
    assert captured.out == ""
    return lines[0]


def test_metric_that_no_run_records(synthetic_store: Path, capsys: pytest.CaptureFixture) -> None:
    line = _error(capsys, ["report", str(synthetic_store), "--metric", "clean-val"])
    assert "--metric clean-val" in line and "clean_val_selected" in line and "--metric val" in line


def test_plots_to_a_file_or_an_unwritable_folder(synthetic_store: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    existing = tmp_path / "figs.png"
    existing.write_text("x")
    assert "--plots" in _error(capsys, ["report", str(synthetic_store), "--plots", str(existing)])
    assert "is an existing file" in _error(capsys, ["report", str(synthetic_store), "--plots", str(existing)])
    line = _error(capsys, ["report", str(synthetic_store), "--plots", str(tmp_path / "no" / "such" / "dir")])
    assert "parent directory" in line and "does not exist" in line
    line = _error(capsys, ["report", str(synthetic_store), "--plots", "/proc/noisybench-figures"])
    assert "--plots '/proc/noisybench-figures' is not writable" in line  # root can write elsewhere; /proc never


def test_unknown_method_is_an_error_not_dropped(synthetic_store: Path, capsys: pytest.CaptureFixture) -> None:
    line = _error(capsys, ["report", str(synthetic_store), "--methods", "ce,nosuch"])
    assert "--methods: 'nosuch' matches no method" in line and "available: ce, co_teaching, gce" in line


def test_output_into_a_missing_directory(synthetic_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "nonexistent" / "x.tex"
    line = _error(capsys, ["report", str(synthetic_store), "--format", "latex", "-o", str(target)])
    assert "does not exist" in line and "create it first" in line
    assert not target.parent.exists()  # never created silently


def test_a_file_given_as_results_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "result.json"
    path.write_text("{}")
    line = _error(capsys, ["report", str(path)])
    assert "is a file" in line and "the folder made by `noisybench run`" in line


def test_corrupt_result_is_reported_in_warnings_and_json(synthetic_store: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    broken = sorted((synthetic_store / "runs").glob("*/result.json"))[0]
    broken.write_text('{"run_id": "trunc')
    capsys.readouterr()
    assert main(["report", str(synthetic_store)]) == 0
    captured = capsys.readouterr()
    assert "Warning" not in captured.err and "warn(" not in captured.err  # no raw Python warning
    warnings = captured.out.split("Warnings")[1]
    assert "1 unreadable result file(s) are left out" in warnings and broken.parent.name in warnings
    assert main(["report", str(synthetic_store), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["failed_runs"] == 1 and len(data["corrupt_runs"]) == 1
    assert data["corrupt_runs"][0].startswith(broken.parent.name)
    assert any("unreadable result file" in w for w in data["warnings"])
