"""The command line: a real grid end to end, reruns, bad input, kill and resume."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from noisybench.cli import main
from noisybench.store.results import load_results
from tests.conftest import TINY_GRID


def run_cli(*args: str) -> int:
    return main(list(args))


def test_run_then_rerun_trains_nothing(grid_file, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert run_cli("run", str(grid_file()), "--out", str(out), "--workers", "1") == 0
    first = capsys.readouterr()
    assert "[4/4]" in first.err and "ETA" in first.err
    assert "CE" in first.out and "Blobs Sym. 20 %" in first.out and "(n=2)" in first.out
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    assert run_cli("run", str(grid_file()), "--out", str(out)) == 0
    second = capsys.readouterr()
    assert "4 already finished, 0 to run" in second.err
    assert second.out == first.out
    assert mtimes == {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}


def test_report_formats(grid_file, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    run_cli("run", str(grid_file()), "--out", str(out), "--workers", "1")
    capsys.readouterr()
    assert run_cli("report", str(out), "--format", "csv") == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    for column in ["dataset", "noise", "method", "seed", "status", "noise_rate_actual", "val_selected", "last"]:
        assert column in header
    assert run_cli("report", str(out), "--format", "md", "--metric", "last") == 0
    assert re.search(r"^\|\s*method\s*\|", capsys.readouterr().out, re.M)
    assert run_cli("report", str(out), "--metric", "best") == 0
    assert "test-selected (leaky)" in capsys.readouterr().out


def test_parallel_workers_match_serial_results(grid_file, tmp_path: Path) -> None:
    run_cli("run", str(grid_file()), "--out", str(tmp_path / "a"), "--workers", "1")
    run_cli("run", str(grid_file()), "--out", str(tmp_path / "b"), "--workers", "2")
    a, b = load_results(tmp_path / "a"), load_results(tmp_path / "b")
    assert list(a["run_id"]) == list(b["run_id"])
    assert list(a["val_selected"]) == list(b["val_selected"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('methods = ["ce", "gce"]', 'methods = ["gcee"]'), "unknown method 'gcee'. Did you mean 'gce'"),
        (('datasets = ["blobs"]', 'datasets = ["mnist-1d"]'), "Did you mean 'mnist1d'"),
        (('noise = ["sym:0.2"]', 'noise = ["sim:0.2"]'), "unknown noise 'sim'. Did you mean 'sym'"),
        (('noise = ["sym:0.2"]', 'noise = ["sym:1.2"]'), "outside [0, 1)"),
        (('noise = ["sym:0.2"]', 'noise = ["asym:0.4"]'), "dataset 'blobs' has none"),
        (("epochs = 3", "epochs = 3\nepochz = 1"), "unknown key 'epochz'"),
        (("[grid]", "[grid\n"), "malformed TOML"),
    ],
)
def test_bad_input_exits_nonzero_with_a_message(
    grid_file, tmp_path: Path, capsys: pytest.CaptureFixture, edit: tuple[str, str], message: str
) -> None:
    path = grid_file(TINY_GRID.replace(*edit))
    assert run_cli("run", str(path), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unwritable_output_directory(grid_file, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run_cli("run", str(grid_file()), "--out", str(blocker / "out")) == 2
    assert "is not writable" in capsys.readouterr().err


def test_corrupt_result_file_is_reported_not_crashed_on(grid_file, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    run_cli("run", str(grid_file()), "--out", str(out), "--workers", "1")
    next(out.rglob("result.json")).write_text("{\"status\": ")
    capsys.readouterr()
    assert run_cli("report", str(out)) == 0  # reported in the report's Warnings, not as a raw Python warning
    report = capsys.readouterr().out
    assert "(n=" in report and "1 unreadable result file(s) are left out" in report


def test_list_and_status(grid_file, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli("list", "methods") == 0 and "gce" in capsys.readouterr().out
    assert run_cli("list", "noises", "sym*") == 0
    listed = capsys.readouterr().out
    assert "sym-dividemix" in listed and "pairflip" not in listed
    out = tmp_path / "out"
    run_cli("run", str(grid_file()), "--out", str(out), "--workers", "1")
    capsys.readouterr()
    assert run_cli("status", str(out)) == 0
    assert "done: 4" in capsys.readouterr().out


def test_rerun_serves_the_unchanged_table_from_the_cache(grid_file, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import noisybench.reporting as reporting

    out = tmp_path / "out"
    run_cli("run", str(grid_file()), "--out", str(out), "--workers", "1")
    first = capsys.readouterr().out
    made: list[int] = []
    real = reporting.make_report
    monkeypatch.setattr(reporting, "make_report", lambda *a, **k: made.append(1) or real(*a, **k))
    assert run_cli("run", str(grid_file()), "--out", str(out)) == 0
    assert capsys.readouterr().out == first and made == []  # nothing changed: no statistics recomputed
    result = next(out.rglob("result.json"))
    record = json.loads(result.read_text())
    record["metrics"]["val_selected"] += 1.0
    result.write_text(json.dumps(record))
    assert run_cli("run", str(grid_file()), "--out", str(out)) == 0
    assert made == [1] and capsys.readouterr().out != first  # a changed result: the table is made again


def test_strict_fails_on_failed_runs_already_in_the_store(grid_file, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    from noisybench.store import ResultStore

    out = tmp_path / "out"
    assert run_cli("run", str(grid_file()), "--out", str(out), "--workers", "1", "--strict") == 0
    store = ResultStore(out)
    record = next(store.iter_results())
    store.write_result({**record, "status": "failed", "reason": "ValueError: x"})  # failed in an earlier run
    capsys.readouterr()
    assert run_cli("run", str(grid_file()), "--out", str(out), "--workers", "1", "--strict") == 1
    assert "1 failed" in capsys.readouterr().err
    assert run_cli("run", str(grid_file()), "--out", str(out), "--workers", "1") == 0


def test_a_full_disk_ends_run_with_one_line_exit_2_and_keeps_what_finished(
        grid_file, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import noisybench.io as io_module
    from noisybench.store import ResultStore

    real = io_module.atomic_write_bytes
    results: list[str] = []

    def full(path, data):  # the disk fills up while the second run writes its final record
        if Path(path).name == "result.json":
            results.append(str(path))
            if len(results) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(io_module, "atomic_write_bytes", full)
    out = tmp_path / "out"
    assert run_cli("run", str(grid_file()), "--out", str(out), "--workers", "1") == 2
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("noisybench: error:")]
    assert f"no space left on device: cannot write {results[1]}" in line and "rerun the same command" in line
    assert "Traceback" not in err
    store = ResultStore(out)
    assert [s.state for s in store.iter_stored()] == ["done"]  # the first run is kept, nothing recorded failed
    monkeypatch.undo()
    assert run_cli("run", str(grid_file()), "--out", str(out), "--workers", "1") == 0
    assert "1 already finished, 3 to run" in capsys.readouterr().err


def test_two_grids_of_one_name_keep_their_own_plans_and_are_warned_about(
        grid_file, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from noisybench.store import ResultStore

    first = grid_file()
    second = tmp_path / "copy.toml"  # copied and edited, `name` left as it was
    second.write_text(TINY_GRID.replace('methods = ["ce", "gce"]', 'methods = ["ce"]').replace("seeds = [1, 2]",
                                                                                               "seeds = [3]"))
    out = tmp_path / "out"
    for grid in (first, second):
        assert run_cli("run", str(grid), "--out", str(out), "--workers", "1") == 0
    err = capsys.readouterr().err
    assert f"grid name 'tiny' is also the name of {first.resolve()}" in err and "own `name`" in err
    planned = ResultStore(out).planned()
    assert len(planned) == 5  # 4 runs of the first grid, 1 of the second: neither plan lost
    assert sorted(ResultStore(out).plan_sources()) == sorted([str(first.resolve()), str(second.resolve())])
    assert run_cli("run", str(first), "--out", str(out), "--workers", "1") == 0
    assert "also the name of" in capsys.readouterr().err
    assert len(list((out / "plans").iterdir())) == 2  # rerunning a grid replaces its own plan
    first.rename(tmp_path / "moved.toml")  # the same grid file, moved: it takes over its old plan
    assert run_cli("run", str(tmp_path / "moved.toml"), "--out", str(out), "--workers", "1") == 0
    assert len(list((out / "plans").iterdir())) == 2
