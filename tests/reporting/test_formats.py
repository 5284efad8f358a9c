"""Terminal, Markdown, CSV (runs, long, wide) and JSON renderers and the ``report`` command."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as ss

from noisybench.cli import main
from noisybench.reporting import ReportOptions
from noisybench.store.report import report_dir as make_report


def _report(store: Path, fmt: str, **kwargs) -> str:
    return make_report(store, ReportOptions(fmt=fmt, **kwargs))[0]


def test_terminal_and_markdown_show_marks_n_and_statistics(synthetic_store: Path) -> None:
    text = _report(synthetic_store, "table")
    assert "*84.67* ± 0.76 (n=3)" in text and "+70.17 ± 1.26† (n=3)" in text
    assert "ddof = 1" in text and "Holm" in text and "average rank" in text and "Friedman" in text
    assert "Hyperparameter provenance: CE suite; co_teaching suite; GCE suite." in text
    md = _report(synthetic_store, "md")
    assert "**84.67** ± 0.76 (n=3)" in md and "<u>70.17</u> ± 1.26† (n=3)" in md and "## Leaderboard" in md
    assert "### Hyperparameter provenance" in md and "lr_scale: suite" in md and "lr_scale: suite" not in text


def test_csv_long_wide_and_runs(synthetic_store: Path) -> None:
    long = pd.read_csv(io.StringIO(_report(synthetic_store, "csv-long")))
    assert len(long) == 12 and {"mean", "std", "n", "p_value", "p_holm", "significant"} <= set(long.columns)
    row = long[(long.method == "gce") & (long.noise == "sym:0.5")].iloc[0]
    assert row["mean"] == pytest.approx(70.1666667) and row["place"] == 1
    wide = pd.read_csv(io.StringIO(_report(synthetic_store, "csv-wide")), index_col="method")
    assert wide.loc["ce", "digits sym:0.2 val mean"] == pytest.approx(81.1666667)
    assert wide.loc["ce", "digits sym:0.2 val n"] == 3
    leaky = _report(synthetic_store, "csv-wide", metric="best").splitlines()[0]
    assert leaky != _report(synthetic_store, "csv-wide").splitlines()[0] and "digits sym:0.2 best mean" in leaky
    runs = pd.read_csv(io.StringIO(_report(synthetic_store, "csv")))
    assert len(runs) == 36 and {"seed", "run_id", "val_selected", "hparam_sources"} <= set(runs.columns)


def test_json_has_every_cell_and_across_results(synthetic_store: Path) -> None:
    data = json.loads(_report(synthetic_store, "json"))
    assert data["metric"] == "val" and data["std_ddof"] == 1 and data["alpha"] == 0.05
    assert len(data["cells"]) == 12
    for cell in data["cells"]:
        assert {"mean", "std", "n", "p_value", "p_holm", "significant", "not_worse_marker"} <= set(cell)
    cells = {(c["method"], c["dataset"], c["noise"]): c for c in data["cells"]}
    best, ce = cells[("gce", "digits", "asym:0.4")], cells[("ce", "digits", "asym:0.4")]
    assert ce["p_value"] == pytest.approx(ss.ttest_rel(best["values"], ce["values"]).pvalue)
    assert best["best"] and best["p_value"] is None
    across = data["across_settings"]
    assert set(across["average_ranks"]) == {"ce", "gce", "co_teaching"}
    assert across["friedman"]["indicative"] and across["wilcoxon"]["reason"]
    assert across["nemenyi_cd"] == pytest.approx(1.657, abs=1e-3)


def test_cli_report_latex_to_file_and_warnings_on_stderr(synthetic_store: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "t").mkdir()
    out = tmp_path / "t" / "table.tex"
    assert main(["report", str(synthetic_store), "--format", "latex", "--standalone", "-o", str(out),
                 "--caption", "My runs.", "--methods", "ce,gce", "--noise", "sym:*"]) == 0
    text = out.read_text()
    assert text.startswith("\\documentclass") and "My runs." in text and "co\\_teaching" not in text
    err = capsys.readouterr().err
    assert "noisybench: warning: cells with n = 3 seeds" in err


def test_cli_report_errors(tmp_path: Path, synthetic_store: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(synthetic_store), "--datasets", "cifar*"]) == 2
    assert "--datasets: 'cifar*' matches no dataset in the results; available: digits, mnist1d" in \
        capsys.readouterr().err
