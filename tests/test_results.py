"""Loading a store into the report frame: display columns, natural order, exact counts, corrupt files."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

from noisybench.results import load_history, load_results
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
