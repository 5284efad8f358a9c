"""Benchmarks run with one torch thread so that ratios are stable on small shared machines."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread(tmp_path_factory: pytest.TempPathFactory) -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("NOISYBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
