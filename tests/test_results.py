"""Loading a store into the report frame: display columns, natural order, exact counts, corrupt files."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from noisybench.store.results import load_history, load_results
from tests.reporting.conftest import write_run


def test_display_columns_come_from_the_plugins(tmp_path: Path) -> None:
    write_run(tmp_path, "dividemix", "mnist1d", "asym:0.4", 1, 80.0, counts=(900, 1000))
    write_run(tmp_path, "my_method", "digits", "sym:0.5", 1, 70.0)
    frame = load_results(tmp_path).set_index("method")
    assert frame.loc["dividemix", ["method_display", "dataset_display", "noise_display"]].tolist() == \
        ["DivideMix", "MNIST-1D", "Asym. 40 %"]
    assert frame.loc["my_method", "method_display"] == "my_method"  # not registered: the id
    assert frame.loc["my_method", "noise_order"] < frame.loc["dividemix", "noise_order"]  # sym before asym
    assert frame.loc["dividemix", ["val_selected_correct", "val_selected_total"]].tolist() == [900, 1000]


def test_runs_of_a_noise_model_this_install_cannot_load_are_still_reported(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    from noisybench.cli import main

    for seed in (1, 2):
        write_run(tmp_path, "ce", "digits", "mynoise:0.3", seed, 70.0 + seed)
    frame = load_results(tmp_path)
    assert frame["noise_family"].tolist() == ["mynoise"] * 2 and frame["noise_rate"].tolist() == [0.3, 0.3]
    assert main(["report", str(tmp_path)]) == 0
    assert "mynoise:0.3" in capsys.readouterr().out


def test_corrupt_result_is_a_row_not_a_warning(tmp_path: Path) -> None:
    write_run(tmp_path, "ce", "digits", "sym:0.2", 1, 80.0)
    bad = write_run(tmp_path, "ce", "digits", "sym:0.2", 2, 81.0)
    (tmp_path / "runs" / bad / "result.json").write_text("{not json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        frame = load_results(tmp_path)
        history = load_history(tmp_path)
    row = frame[frame["run_id"] == bad].iloc[0]
    assert row["status"] == "corrupt" and "result.json" in row["reason"]
    assert (frame["status"] == "done").sum() == 1 and set(history["run_id"]) == set(frame["run_id"]) - {bad}


def test_reporting_never_imports_torch() -> None:
    code = ("import sys\nimport noisybench.reporting, noisybench.reporting.plots, noisybench.reporting.latex, "
            "noisybench.reporting.html, noisybench.reporting.formats\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished 4-run grid (its grid file and store)."""
    from noisybench.cli import main
    from tests.conftest import TINY_GRID

    folder = tmp_path_factory.mktemp("tiny")
    grid = folder / "g.toml"
    grid.write_text(TINY_GRID)
    assert main(["run", str(grid), "--out", str(folder / "out"), "--workers", "1"]) == 0
    return grid, folder / "out"


WRONG_TYPES = {
    "string-metric": (("metrics", "last"), "85.0"),
    "train-not-a-table": (("config", "train"), "fast"),
    "string-seed": (("config", "seed"), "1"),
    "metrics-a-list": (("metrics",), [85.0]),
    "dataset-a-string": (("config", "dataset"), "blobs"),
    "method-a-number": (("config", "method"), 3),
    "hparams-a-list": (("config", "hparams"), [1]),
    "wall-time-a-string": (("wall_time",), "3 s"),
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
def test_a_record_with_a_wrong_field_type_is_corrupt_in_report_and_run(
        case: str, tiny_store: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json
    import shutil

    from noisybench.cli import main
    from noisybench.store import ResultStore

    grid, original = tiny_store
    out = tmp_path / "out"
    shutil.copytree(original, out)
    path = sorted(out.rglob("result.json"))[0]
    bad = path.parent.name
    record = json.loads(path.read_text())
    keys, value = WRONG_TYPES[case]
    target = record
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    path.write_text(json.dumps(record))
    stored = ResultStore(out).stored(bad)
    assert stored.state == "corrupt" and ".".join(keys) in stored.problem
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    report = capsys.readouterr()
    assert "Traceback" not in report.err and bad in report.out and "(n=" in report.out  # named among the warnings
    assert main(["run", str(grid), "--out", str(out), "--workers", "1"]) == 0  # redone, not a crash
    err = capsys.readouterr().err
    assert f"corrupt run {bad}" in err and "Traceback" not in err
    assert ResultStore(out).stored(bad).state == "done"
