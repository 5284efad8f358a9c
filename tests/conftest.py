"""Shared fixtures: one torch thread (exact, comparable floats), a private data cache, and a checkpoint after
every epoch (tests stop and resume runs at chosen epochs; ``tests/test_runner.py`` covers the interval)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _single_thread_and_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("NOISYBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    os.environ.setdefault("NOISYBENCH_CHECKPOINT_SECONDS", "0")


TINY_GRID = """
name = "tiny"
[grid]
datasets = ["blobs"]
methods = ["ce", "gce"]
noise = ["sym:0.2"]
seeds = [1, 2]
[train]
epochs = 3
[datasets.blobs]
n_samples = 400
dim = 8
classes = 4
"""


@pytest.fixture
def tiny_grid() -> str:
    """A 4-run grid on small blobs (2 methods x 2 seeds, 3 epochs)."""
    return TINY_GRID


@pytest.fixture
def grid_file(tmp_path: Path):
    """Write a grid body to ``tmp_path/g.toml`` and return the path."""

    def write(body: str = TINY_GRID) -> Path:
        path = tmp_path / "g.toml"
        path.write_text(body)
        return path

    return write


@pytest.fixture
def plugin():
    """``plugin(name, cls)`` registers a method class for one test (then removes it)."""
    from noisybench.registry import METHODS

    added: list[str] = []

    def register(name: str, cls: type) -> None:
        cls.name = name
        METHODS.add(name, cls)
        added.append(name)

    yield register
    for name in added:
        METHODS._items.pop(name, None)
        METHODS._origins.pop(name, None)


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch):
    """Registries and local-plugin folders as a new process would find them, restored after the test.

    Local plugin modules loaded by the test are forgotten (their folder can be loaded again, e.g. after an edit).
    Returns a function that forgets them again mid-test (a "new process")."""
    import sys

    from noisybench import plugins, registry

    for reg in registry.REGISTRIES.values():
        reg.load()
        for attr in ("_items", "_origins", "_broken"):
            monkeypatch.setattr(reg, attr, dict(getattr(reg, attr)))
        monkeypatch.setattr(reg, "_loaded", True)
    monkeypatch.setattr(plugins, "LOADED", {})
    monkeypatch.setattr(registry, "FAILED_MODULES", set(registry.FAILED_MODULES))
    snapshot = {name: (dict(reg._items), dict(reg._origins), dict(reg._broken))
                for name, reg in registry.REGISTRIES.items()}

    def forget() -> None:
        for name in [m for m in sys.modules if m == plugins.LOCAL_PACKAGE or m.startswith(plugins.LOCAL_PACKAGE + ".")]:
            del sys.modules[name]
        plugins.LOADED.clear()
        for name, reg in registry.REGISTRIES.items():
            items, origins, broken = snapshot[name]
            reg._items, reg._origins, reg._broken = dict(items), dict(origins), dict(broken)
            reg._loaded = False  # the next lookup loads again (built-ins are imported already; plugin folders anew)

    forget()
    yield forget
    forget()
