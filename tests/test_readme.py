"""The README's "Adding a method" example works as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from noisybench.config import Grid
from noisybench.plan import expand_grid
from noisybench.registry import METHODS
from noisybench.trainer import Trainer

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_method_example_registers_and_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    text = README.read_text()
    section = text[text.index("## Adding a method"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    METHODS.list()  # load the built-ins first, so that the copy below holds them
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))  # keep the global registry clean
    monkeypatch.setattr(METHODS, "_origins", dict(METHODS._origins))
    exec(compile(code, "README.md", "exec"), {})
    assert "my-loss" in METHODS.list("my-*")
    grid = Grid(name="readme", datasets=["blobs"], methods=["my-loss"], noise=["sym:0.2"], seeds=[1],
                train={"epochs": 2}, dataset_params={"blobs": {"n_samples": 300}})
    run = expand_grid(grid)[0]
    assert run.hparam_sources == {"alpha": "suite"}
    out = Trainer(run).run()
    assert len(out["history"]) == 2 and out["metrics"]["last"] > 30


def test_readme_grid_example_expands(tmp_path) -> None:
    from noisybench.config import load_grid

    text = README.read_text()
    section = text[text.index("### Grid files"):]
    body = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "example.toml"
    path.write_text(body)
    runs = expand_grid(load_grid(path))
    assert len(runs) == 2 * 2 * 3 * 3 and {r.train.epochs for r in runs} == {40}


def test_readme_method_contract_is_generated_from_the_docstrings() -> None:
    from noisybench.conformance import contract_reference

    text = README.read_text()
    start = text.index("<!-- contract:")
    section = text[text.index("\n", start) + 1:text.index("<!-- end of contract -->")]
    assert section == contract_reference(), "README's contract section drifted: regenerate it with " \
        "noisybench.conformance.contract_reference()"
    assert "`ctx.num_train`" in section and "4. on a resume, `load_state_dict`" in section
    assert "`ctx.lr`" in section and "`ctx.epochs`" in section and "| `extend_network` |" in section
