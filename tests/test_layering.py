"""The architecture's walls, read from the source (ast): who may import whom, who owns the results layout.

Data flows one way: grid -> plan -> executor -> trainer(method, data, noise) -> store -> report.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folders and the package names they install as (pyproject's package-dir).
FOLDERS = {"noisybench": "noisybench", "methods": "noisybench.methods", "datasets": "noisybench.datasets"}
#: The on-disk names of the results layout: only the store package may spell them.
LAYOUT_NAMES = {"result.json", "checkpoint.pt", "config.json", "environment.json", "history.json", "noise.json",
                "traceback.txt",
                "noisy_labels.npy", "claims", "jobs", "plans", "runs"}


def modules() -> dict[str, Path]:
    """Module name -> file of every source module."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports_of(name: str, path: Path, top_level_only: bool = False) -> set[str]:
    """Modules ``name`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text())
    nodes = _module_level(tree.body) if top_level_only else ast.walk(tree)
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*package, base]) if base else ".".join(package)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements run at import (``if TYPE_CHECKING:`` and ``try:`` blocks included), not in functions."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If):
            out += _module_level(node.body) + _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            out += _module_level(node.body) + _module_level(node.orelse) + _module_level(node.finalbody)
    return out


def _within(imported: set[str], prefixes: tuple[str, ...]) -> set[str]:
    return {m for m in imported if any(m == p or m.startswith(p + ".") for p in prefixes)}


def test_trainer_knows_no_concrete_method() -> None:
    trainer = modules()["noisybench.trainer"]
    assert _within(imports_of("noisybench.trainer", trainer), ("noisybench.methods",)) == set()


@pytest.mark.parametrize("name", [m for m in modules() if m.startswith("noisybench.methods")])
def test_methods_know_only_the_contract(name: str) -> None:
    forbidden = ("noisybench.cli", "noisybench.orchestration", "noisybench.store", "noisybench.reporting",
                 "noisybench.tuning", "noisybench.trainer", "noisybench.data.prepare")
    assert _within(imports_of(name, modules()[name]), forbidden) == set()


def test_only_the_store_spells_the_results_layout() -> None:
    offenders = []
    for name, path in modules().items():
        if name.startswith("noisybench.store"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if node.value.strip("/") in LAYOUT_NAMES or any(f"/{n}" in node.value for n in LAYOUT_NAMES):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert offenders == []


def test_module_level_imports_have_no_cycle() -> None:
    mods = modules()
    graph = {name: _within(imports_of(name, path, top_level_only=True), tuple(mods)) & set(mods)
             for name, path in mods.items()}
    for name in graph:  # a package's __init__ importing its own submodules is not a cycle of layers
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_method_contract_does_not_import_the_trainer() -> None:
    contract = modules()["noisybench.method"]
    assert _within(imports_of("noisybench.method", contract), ("noisybench.trainer", "noisybench.methods")) == set()


def test_reporting_never_imports_torch() -> None:
    code = ("import sys, noisybench.reporting, noisybench.reporting.plots, noisybench.reporting.latex, "
            "noisybench.reporting.html, noisybench.reporting.formats; "
            "sys.exit('torch imported' if 'torch' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", [m for m in modules() if m.startswith("noisybench.reporting")])
def test_reporting_opens_no_file_of_the_store(name: str) -> None:
    imported = imports_of(name, modules()[name])
    assert _within(imported, ("noisybench.store", "noisybench.store.results", "torch")) == set()


@pytest.mark.parametrize("name", [m for m in modules() if m.startswith("noisybench.methods")])
def test_methods_name_no_dataset_and_match_no_noise_family(name: str) -> None:
    """Methods decide on declared facts (family, noise kind), never on a dataset's or noise model's name."""
    from noisybench.registry import DATASETS, NOISES

    text = modules()[name].read_text()
    named = [d for d in DATASETS.list() if d.lower() in text.lower()]
    assert named == [], f"{name} names dataset(s) {named}"
    tree = ast.parse(text)
    keyword_values = {id(k.value) for k in ast.walk(tree) if isinstance(k, ast.keyword)}  # e.g. reduction="none"
    literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                and id(n) not in keyword_values and n.value.split(":")[0] in NOISES.list()]
    assert literals == [], f"{name} matches noise-family strings {literals}"
    prefix_tests = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "noise_family"]
    assert prefix_tests == [], f"{name} reads setting.noise_family (lines {prefix_tests}); use setting.noise_kind"
