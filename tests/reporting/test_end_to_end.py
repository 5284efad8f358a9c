"""A tiny real grid (blobs, 2 epochs) through `noisybench run` and every report format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from scipy import stats as ss

from noisybench.cli import main
from noisybench.store.results import load_results
from tests.reporting.test_latex import compile_tex

GRID = """
name = "e2e"
[grid]
datasets = ["blobs"]
methods = ["ce", "gce"]
noise = ["sym:0.2", "sym:0.4"]
seeds = [1, 2, 3]
[train]
epochs = 2
[datasets.blobs]
n_samples = 300
dim = 8
classes = 4
"""


@pytest.fixture(scope="module")
def e2e_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    (root / "g.toml").write_text(GRID)
    assert main(["run", str(root / "g.toml"), "--out", str(root / "out"), "--workers", "1"]) == 0
    return root / "out"


@pytest.mark.slow
def test_json_p_values_match_scipy_on_real_runs(e2e_store: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["report", str(e2e_store), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    frame = load_results(e2e_store)
    assert len(data["cells"]) == 4 and all(c["n"] == 3 for c in data["cells"])
    for noise in ("sym:0.2", "sym:0.4"):
        cells = {c["method"]: c for c in data["cells"] if c["noise"] == noise}
        best = max(cells.values(), key=lambda c: c["mean"])
        other = next(c for c in cells.values() if c is not best)
        runs = frame[frame.noise == noise].set_index(["method", "seed"])["val_selected"]
        a = [runs[(best["method"], s)] for s in (1, 2, 3)]
        b = [runs[(other["method"], s)] for s in (1, 2, 3)]
        if a == b:
            assert other["p_value"] == 1.0
        else:
            assert other["p_value"] == pytest.approx(ss.ttest_rel(a, b).pvalue)
        assert other["p_holm"] == pytest.approx(other["p_value"])  # one comparison per column
    # the runs recorded exact counts, and the JSON exposes the exact means behind the ranks
    assert all(c["exact_mean"] for c in data["cells"]) and data["across_settings"]["exact_ties"]
    assert data["across_settings"]["nemenyi_cd"] is None and data["corrupt_runs"] == []


@pytest.mark.slow
@pytest.mark.latex
def test_standalone_latex_of_real_runs_compiles(e2e_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.tex"
    assert main(["report", str(e2e_store), "--format", "latex", "--standalone", "-o", str(out)]) == 0
    compile_tex(out.read_text(), tmp_path)


@pytest.mark.slow
def test_html_of_real_runs_embeds_figures(e2e_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(e2e_store), "--format", "html", "-o", str(out), "--plots", str(tmp_path / "f")]) == 0
    html = out.read_text()
    # noise curve, test accuracy and fit to mislabelled training samples over epochs; no CD diagram with
    # 2 methods (no Friedman, no Nemenyi CD)
    assert len(re.findall(r"data:image/png;base64,", html)) == 3
    assert (tmp_path / "f" / "memorization_train.pdf").exists() and not (tmp_path / "f" / "cd_diagram.pdf").exists()
    assert (tmp_path / "f" / "memorization.pdf").exists()
