"""Streamed (DataLoader) datasets give the same batches and results as the in-memory path.

Noise is "none" in the comparison: noise streams are keyed by the dataset name, which differs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from noisybench.config import parse_grid
from noisybench.data import DataSplits
from noisybench.data.streaming import ImageList, iter_batches
from noisybench.datasets.clothing1m import Clothing1M
from noisybench.plan import expand_grid
from noisybench.registry import DATASETS
from noisybench.trainer import Trainer
from tests.datasets.fixtures import write_clothing1m


def _dense(x: ImageList) -> torch.Tensor:
    return torch.stack([x.decode(i) for i in range(len(x))])


class InMemoryClothing(Clothing1M):
    """The same files, decoded up front (the in-memory path)."""

    def load(self) -> DataSplits:
        s = super().load()
        extra = {k: (_dense(x), y) for k, (x, y) in s.extra_test.items()}
        return DataSplits(_dense(s.x_train), s.y_train, _dense(s.x_test), s.y_test, False, extra)


DATASETS.list()  # load the built-ins before adding the test plugin
DATASETS.add("clothing1m-in-memory", InMemoryClothing, force=True)


def _run(dataset: str, root: Path, workers: int, **params) -> list[dict]:
    grid = parse_grid({
        "grid": {"datasets": [dataset], "methods": ["ce"], "noise": ["none"], "seeds": [3]},
        "train": {"protocol": "fast", "arch": "airbench", "arch_kwargs": {"widths": [8, 8, 8], "stem": 8},
                  "epochs": 2, "batch_size": 8, "val_fraction": 0.0, "num_workers": workers},
        "datasets": {dataset: {"image_size": 20, "crop": 16, **params}}, "data": {"root": str(root)},
    })
    return Trainer(expand_grid(grid)[0]).run()["history"]


def test_image_list_indexes_like_a_tensor(tmp_path: Path) -> None:
    root = write_clothing1m(tmp_path / "images", n_noisy=14, n_val=14, n_test=14)
    x = ImageList(sorted(root.rglob("noisy_*.jpg")), 20)
    sub = x[np.array([3, 1])]
    assert isinstance(sub, ImageList) and sub.shape == (2, 3, 20, 20)
    assert torch.equal(sub[1], x[1]) and torch.equal(x[torch.tensor([2])][0], x[2])
    batches = [torch.tensor([0, 5]), torch.tensor([7])]
    serial = list(iter_batches(x, batches, torch.device("cpu"), 0))
    workers = list(iter_batches(x, batches, torch.device("cpu"), 2))
    assert [b.shape for b in serial] == [(2, 3, 20, 20), (1, 3, 20, 20)]
    assert all(torch.equal(a, b) for a, b in zip(serial, workers))


@pytest.mark.slow
def test_streamed_and_in_memory_training_are_identical(tmp_path: Path) -> None:
    root = write_clothing1m(tmp_path / "images", n_noisy=42, n_val=14, n_test=14)
    memory = _run("clothing1m-in-memory", root, 0)
    streamed = _run("clothing1m", root, 2)
    keys = ["train_loss", "test_acc", "clean_val_acc"]
    assert [[r[k] for k in keys] for r in memory] == [[r[k] for k in keys] for r in streamed]


def test_epoch_samples_limit_each_epoch(tmp_path: Path) -> None:
    root = write_clothing1m(tmp_path / "images", n_noisy=70, n_val=14, n_test=14)
    grid = parse_grid({
        "grid": {"datasets": ["clothing1m"], "methods": ["ce"], "noise": ["none"], "seeds": [0]},
        "train": {"protocol": "fast", "arch": "mlp", "arch_kwargs": {"hidden": [8]}, "epochs": 2,
                  "batch_size": 4, "val_fraction": 0.0, "num_workers": 0, "augment": False},
        "datasets": {"clothing1m": {"image_size": 8, "crop": 8, "epoch_samples": 28}},
        "data": {"root": str(root)},
    })
    ctx, _ = Trainer(expand_grid(grid)[0]).setup()
    seen = []
    for epoch in range(2):
        ctx.begin_epoch(epoch)
        idx = torch.cat([b.index for b in ctx.train_batches()])
        assert len(idx) == 28 and np.bincount(ctx.y_noisy[idx].numpy(), minlength=14).tolist() == [2] * 14
        seen.append(set(idx.tolist()))
    assert seen[0] != seen[1]
