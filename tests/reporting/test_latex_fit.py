"""The quick board's LaTeX fits: compiled in a plain article (and a 490 pt two-column page), rendered to PNG
and compared with a checked-in golden image (marker ``latex``; they fail instead of skipping when CI is set)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from noisybench.reporting import ReportOptions
from noisybench.store.report import report_dir as make_report
from tests.reporting.conftest import GOLDEN, write_run
from tests.reporting.test_latex import compile_tex

UPDATE = os.environ.get("NOISYBENCH_UPDATE_GOLDEN") == "1"
METHODS = {"ce": 0.0, "alr": 1.1, "dividemix": 4.3, "elr": 2.2, "gce": 1.9}
SETTINGS = {"sym:0.2": 93.5, "sym:0.5": 90.0, "sym:0.8": 55.0, "asym:0.4": 88.0}
#: Share of differing pixels (inside the union of both ink boxes) tolerated by the golden PNG comparison.
PIXEL_TOLERANCE = 0.06


@pytest.fixture
def quick_board(tmp_path: Path) -> Path:
    """A fixed board shaped like the quick leaderboard: 5 methods x (digits, mnist1d) x 4 settings x 3 seeds."""
    root = tmp_path / "quick"
    for m_i, (method, gain) in enumerate(METHODS.items()):
        for d_i, dataset in enumerate(("digits", "mnist1d")):
            for noise, base in SETTINGS.items():
                for seed in (1, 2, 3):
                    wobble = ((seed * 7 + m_i * 3 + d_i * 5) % 5 - 2) * 0.37
                    write_run(root, method, dataset, noise, seed, round(base - 3 * d_i + gain + wobble, 2))
    return root


def _preamble(fragment: str, two_column: bool = False) -> str:
    packages = re.findall(r"^%\s+\\usepackage\{(\w+)\}", fragment, flags=re.M)
    assert packages, "the fragment must name its packages in a comment at the top"
    head = "\\documentclass[twocolumn]{article}\n\\setlength{\\textwidth}{490pt}\n" if two_column else \
        "\\documentclass{article}\n"
    return head + "".join(f"\\usepackage{{{p}}}\n" for p in packages) + "\\pagestyle{empty}\n"


def _measured(fragment: str) -> str:
    """The fragment with every tabular boxed and its width written to the log as ``TABWIDTH=<pt>``."""
    return fragment.replace("\\begin{tabular}", "\\setbox1=\\hbox{\\begin{tabular}").replace(
        "\\end{tabular}", "\\end{tabular}}\\typeout{TABWIDTH=\\the\\wd1}\\box1")


def _compile_fragment(fragment: str, folder: Path, two_column: bool = False) -> tuple[Path, list[float], float]:
    """``\\input`` the fragment into an article; return the PDF, the table widths and the text width (pt)."""
    (folder / "fragment.tex").write_text(_measured(fragment))
    doc = _preamble(fragment, two_column) + "\\begin{document}\n\\typeout{TEXTWIDTH=\\the\\textwidth}\n" \
        "\\input{fragment}\n\\end{document}\n"
    pdf = compile_tex(doc, folder)  # fails on errors and on any overfull box
    log = (folder / "doc.log").read_text(errors="replace")
    widths = [float(w) for w in re.findall(r"TABWIDTH=([\d.]+)pt", log)]
    return pdf, widths, float(re.findall(r"TEXTWIDTH=([\d.]+)pt", log)[0])


def _latex(store: Path, **kwargs) -> str:
    return make_report(store, ReportOptions(fmt="latex", published=False, **kwargs))[0]


@pytest.mark.latex
@pytest.mark.parametrize("layout", ["long", "per-dataset"])
def test_narrow_layouts_fit_a_plain_article(quick_board: Path, tmp_path: Path, layout: str) -> None:
    _, widths, text = _compile_fragment(_latex(quick_board, layout=layout), tmp_path)
    assert widths and all(w <= text for w in widths), (widths, text)
    assert len(widths) == (2 if layout == "per-dataset" else 1)


@pytest.mark.latex
def test_wide_layout_scaled_to_linewidth_fits(quick_board: Path, tmp_path: Path) -> None:
    fragment = _latex(quick_board, width="\\linewidth")
    assert "\\usepackage{graphicx}" in fragment
    _, widths, text = _compile_fragment(fragment, tmp_path)
    assert widths[0] > text  # the natural width is too wide, so \resizebox scales it to the line


@pytest.mark.latex
def test_wide_table_star_fits_a_490pt_two_column_page(quick_board: Path, tmp_path: Path) -> None:
    fragment = _latex(quick_board, float_env="table*")
    assert "\\begin{table*}[t]" in fragment
    _, widths, text = _compile_fragment(fragment, tmp_path, two_column=True)
    assert text == 490.0 and widths[0] <= 490.0, widths


def _ink(image: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(image < 128)
    return image[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _rasterise(pdf: Path, dpi: int = 60) -> np.ndarray:
    from PIL import Image

    exe = shutil.which("pdftoppm")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("pdftoppm is missing but CI is set: .ci/install-latex.sh should have installed it")
        pytest.skip("pdftoppm not installed (run .ci/install-latex.sh)")
    subprocess.run([exe, "-r", str(dpi), "-gray", "-png", "-singlefile", str(pdf), str(pdf.with_suffix(""))],
                   check=True, timeout=60)
    return np.asarray(Image.open(pdf.with_suffix(".png")).convert("L"))


def _pixel_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Share of differing pixels after cropping both to their ink and padding to a common size."""
    a, b = _ink(a), _ink(b)
    shape = (max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1]))
    pad = lambda x: np.pad(x, [(0, shape[0] - x.shape[0]), (0, shape[1] - x.shape[1])], constant_values=255)  # noqa: E731
    return float(np.mean(np.abs(pad(a).astype(int) - pad(b).astype(int)) > 96))


@pytest.mark.latex
def test_long_layout_matches_golden_png(quick_board: Path, tmp_path: Path) -> None:
    from PIL import Image

    pdf, _, _ = _compile_fragment(_latex(quick_board, layout="long", caption="Quick board (golden)."), tmp_path)
    image = _rasterise(pdf)
    golden = GOLDEN / "quick_long.png"
    if UPDATE:
        Image.fromarray(image).save(golden)
    reference = np.asarray(Image.open(golden).convert("L"))
    assert abs(_ink(image).shape[1] - _ink(reference).shape[1]) <= 4, "table width changed"
    assert abs(_ink(image).shape[0] - _ink(reference).shape[0]) <= 4, "table height changed"
    diff = _pixel_difference(image, reference)
    assert diff <= PIXEL_TOLERANCE, f"{diff:.3f} of pixels differ; check and rerun with NOISYBENCH_UPDATE_GOLDEN=1"


def test_pixel_difference_notices_a_layout_change() -> None:
    page = np.full((60, 80), 255, dtype=np.uint8)
    page[10:30, 10:70] = 0
    moved = np.full((60, 80), 255, dtype=np.uint8)
    moved[10:30, 10:40] = 0
    moved[32:52, 10:40] = 0  # the same ink, stacked instead of side by side
    assert _pixel_difference(page, page.copy()) == 0.0
    assert _pixel_difference(page, moved) > PIXEL_TOLERANCE
