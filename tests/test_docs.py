"""The documentation: generated pages match the code, and the examples on the hand-written pages work as written."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from noisybench.plan import expand_grid
from noisybench.registry import METHODS
from noisybench.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Working notes a user cannot open; the documentation cites papers, official code and its own pages instead.
INTERNAL = re.compile(r"(methods|landscape|infra|next-methods)\.md|landscape §")


def _load_gen():
    spec = importlib.util.spec_from_file_location("docs_gen", DOCS / "gen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():
    return _load_gen()


def _block(path: Path, name: str) -> str:
    text = path.read_text()
    start = text.index(f"<!-- generated: {name} ")
    return text[text.index("\n", start) + 1:text.index(f"<!-- end generated: {name} -->")]


def test_committed_pages_equal_what_the_code_generates(gen) -> None:
    differ = gen.drift()
    assert differ == [], f"documentation out of date: {differ}; regenerate with: python docs/gen.py"


def test_every_builtin_method_has_a_page_and_a_nav_entry(gen) -> None:
    builtin = [m for m in METHODS.list() if METHODS.get(m).__module__.startswith("noisybench.methods.")]
    assert {"ce", "gce", "elr", "alr", "dividemix"} <= set(builtin)
    nav = (ROOT / "mkdocs.yml").read_text()
    index = (DOCS / "methods" / "index.md").read_text()
    for name in builtin:
        page = (DOCS / "methods" / f"{name}.md").read_text()
        assert f"`{name}`" in page and "## Description" in page and "## Hyperparameters" in page
        assert f"methods/{name}.md" in nav and f"]({name}.md)" in index


def test_method_pages_carry_recipes_with_provenance_and_deviations() -> None:
    elr = (DOCS / "methods" / "elr.md").read_text()
    assert "### CIFAR-10: `asym:0.4`" in elr and "shengliu66/ELR@934af53 official CIFAR-10 config for asymmetric" in elr
    assert "| `lam` |" in elr and "1 (p)" in elr  # ELR's asymmetric-noise lambda from the official config
    gce = (DOCS / "methods" / "gce.md").read_text()
    assert "## Deviations from the reference code" in gce and "main.py:184-186" in gce
    assert "No published recipe" in (DOCS / "methods" / "dividemix.md").read_text()
    assert "declares no published recipe" in (DOCS / "methods" / "ce.md").read_text()


def test_drift_is_detected_and_rewritten(gen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hand edit of a generated page, a stale page and a missing nav entry are all caught, then fixed."""
    shutil.copytree(DOCS, tmp_path / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    monkeypatch.setattr(gen, "DOCS", tmp_path / "docs")
    monkeypatch.setattr(gen, "MKDOCS", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "methods" / "elr.md"
    page.write_text(page.read_text().replace("0.9 (p)", "0.8 (p)"))
    (tmp_path / "docs" / "methods" / "gone.md").write_text("# Gone\n")
    env = tmp_path / "docs" / "environment.md"
    env.write_text(env.read_text().replace("NOISYBENCH_STOP_GRACE", "NOISYBENCH_STOP"))
    nav = tmp_path / "mkdocs.yml"
    nav.write_text(nav.read_text().replace("    - GCE: methods/gce.md\n", ""))
    assert gen.main(["--check"]) == 1
    assert set(gen.drift()) == {"docs/methods/elr.md", "docs/environment.md", "mkdocs.yml",
                                "docs/methods/gone.md (no such method any more)"}
    gen.main([])
    assert gen.drift() == [] and not (tmp_path / "docs" / "methods" / "gone.md").exists()
    assert "0.9 (p)" in page.read_text() and "NOISYBENCH_STOP_GRACE" in env.read_text()


def test_docstring_markup_becomes_markdown() -> None:
    sys.path.insert(0, str(DOCS))
    from gen_methods import markdown

    doc = ("Title line with :meth:`~noisybench.method.Method.setup` and <t, p>.\n\n"
           "A command::\n\n    python -m x --flag\n\nText\n- item one\n  continued\n- item two\n\n"
           "Attributes\n----------\nrest")
    text = markdown(doc)
    assert text.startswith("Title line with `setup` and &lt;t, p>.")
    assert "A command:\n\n```\npython -m x --flag\n```" in text
    assert "Text\n\n- item one\n  continued\n- item two" in text and "**Attributes**" in text


def test_method_contract_is_generated_from_the_docstrings() -> None:
    from noisybench.conformance import contract_reference

    section = _block(DOCS / "adding-a-method.md", "contract")
    assert section == contract_reference(), "the contract drifted: regenerate with python docs/gen.py"
    assert "`ctx.num_train`" in section and "4. on a resume, `load_state_dict`" in section
    assert "`ctx.lr`" in section and "`ctx.epochs`" in section and "| `extend_network` |" in section


def test_method_example_loads_from_a_folder_of_its_own_and_trains(tmp_path: Path, fresh_plugins) -> None:
    """The route "Adding a method" starts with: a file in the user's folder, named by the grid's [plugins] paths."""
    from noisybench.config import load_grid

    text = (DOCS / "adding-a-method.md").read_text()
    code = re.search(r"```python\n# (\S+)\n(.*?)```", text, re.S)
    grid_text = re.search(r"```toml\n# (\S+),.*?\n(.*?)```", text, re.S)
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


def test_grid_example_expands(tmp_path: Path) -> None:
    from noisybench.config import load_grid

    body = re.search(r"```toml\n(.*?)```", (DOCS / "grids.md").read_text(), re.S).group(1)
    path = tmp_path / "example.toml"
    path.write_text(body)
    runs = expand_grid(load_grid(path))
    assert len(runs) == 2 * 2 * 3 * 3 and {r.train.epochs for r in runs} == {40}
    assert {r.hparams["q"] for r in runs if r.method == "gce"} == {0.7}


def test_pages_code_grids_and_tables_cite_nothing_a_user_cannot_open() -> None:
    shipped = [*DOCS.rglob("*.md"), ROOT / "README.md", *(ROOT / "benchmarks").glob("*.toml")]
    for folder in ("noisybench", "methods", "datasets", "benchmarks", "docs"):
        shipped += [p for suffix in ("*.py", "*.csv") for p in (ROOT / folder).rglob(suffix)]
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in sorted(set(shipped))
                 for n, line in enumerate(p.read_text().splitlines(), 1) if INTERNAL.search(line) or "§" in line]
    assert offenders == []


def test_site_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict`` (as CI runs it): a broken link or a page missing from the nav fails."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    html = (tmp_path / "site" / "methods" / "elr" / "index.html").read_text()
    assert "Published recipes" in html and "shengliu66/ELR@934af53" in html


def test_reference_functions_and_search_space_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    """A method module with ``REFERENCE_FUNCTIONS`` and a search space gets both sections on its page."""
    import types

    import torch

    from noisybench.method import HParam, Method
    from noisybench.search_space import LogUniform, Uniform

    sys.path.insert(0, str(DOCS))
    from gen_methods import method_page

    module = types.ModuleType("noisybench.methods.docs_probe", "Probe: a loss for the page generator (Doe, 2020).")

    def probe_loss(logits: torch.Tensor, labels: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """Mean probe loss of a batch.

        Longer text that stays off the table."""
        return logits.mean()

    module.probe_loss = probe_loss
    module.REFERENCE_FUNCTIONS = ("probe_loss",)
    monkeypatch.setitem(sys.modules, module.__name__, module)

    class Probe(Method):
        """A probe method."""

        hparams = {"beta": 0.5}

        @classmethod
        def default_hparams(cls, setting):
            return {"beta": HParam(0.5, "paper-default", "official config, line 3")}

        @classmethod
        def search_space(cls, setting, hparams=None):
            """Ranges: ``beta`` from the paper's sensitivity study."""
            return {"beta": Uniform(0.1, 0.9, "paper"), "gamma": LogUniform(0.01, 1.0)}

        def training_step(self, ctx, batch, epoch):
            return ctx.nets[0](batch.x).mean()

    Probe.__module__, Probe.name = module.__name__, "docs-probe"
    page = method_page(Probe)
    assert "Probe: a loss for the page generator (Doe, 2020)." in page
    assert "| `docs_probe.probe_loss(logits: torch.Tensor, labels: torch.Tensor, beta: float = 1.0)` | Mean probe" \
           " loss of a batch. |" in page
    assert "## Search space (`[tune]`)" in page and "| `beta` | U[0.1, 0.9] | paper |" in page
    assert "| `gamma` | logU[0.01, 1] | suite |" in page and "Ranges: `beta` from the paper's" in page
    assert "- `beta`: official config, line 3" in page and "0.5 (pd)" in page
