"""Missing data fails before a grid starts, with the expected layout, and records nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from noisybench.cli import main
from noisybench.data import create_dataset
from noisybench.errors import DataError
from tests.datasets.fixtures import write_animal10n, write_cifar10, write_clothing1m, write_webvision

WRITERS = {
    "cifar10": lambda root: write_cifar10(root),
    "animal10n": lambda root: write_animal10n(root),
    "clothing1m": lambda root: write_clothing1m(root),
    "webvision": lambda root: write_webvision(root, per_class=1, classes=3),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_check_ready_refuses_an_empty_root_and_accepts_the_layout(name: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="expected layout"):
        create_dataset(name, root=empty).check_ready()
    root = WRITERS[name](tmp_path / "data")
    create_dataset(name, root=root).check_ready()


def test_run_with_missing_data_exits_before_recording_failures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('name = "c"\n[grid]\ndatasets = ["cifar10"]\nmethods = ["ce"]\nnoise = ["sym:0.2"]\nseeds = [1]\n')
    out = tmp_path / "out"
    assert main(["run", str(grid), "--out", str(out), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "lacks data_batch_1" in err and "expected layout" in err
    assert not list(out.rglob("result.json"))
