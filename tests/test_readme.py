"""The README's "Adding a method" example works as written."""

from __future__ import annotations

import re
from pathlib import Path

from noisybench.plan import expand_grid
from noisybench.registry import METHODS
from noisybench.trainer import Trainer

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_method_example_loads_from_a_folder_of_its_own_and_trains(tmp_path: Path, fresh_plugins) -> None:
    """The route the README starts with: a file in the user's folder, named by the grid's [plugins] paths."""
    from noisybench.config import load_grid

    text = README.read_text()
    section = text[text.index("## Adding a method"):]
    code = re.search(r"```python\n# (\S+)\n(.*?)```", section, re.S)
    grid_text = re.search(r"```toml\n# (\S+),.*?\n(.*?)```", section, re.S)
    (tmp_path / code.group(1)).parent.mkdir(parents=True)
    (tmp_path / code.group(1)).write_text(code.group(2))
    grid = tmp_path / grid_text.group(1)
    grid.write_text(grid_text.group(2) + "[train]\nepochs = 2\n[datasets.blobs]\nn_samples = 300\n")
    runs = expand_grid(load_grid(grid))
    assert "my-loss" in METHODS.list("my-*") and METHODS.origin("my-loss").file == str(tmp_path / code.group(1))
    run = next(r for r in runs if r.method == "my-loss")
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
