"""Synthetic Gaussian classes: fast, configurable, no files."""

from __future__ import annotations

import numpy as np
import torch

from noisybench.data import Dataset, DataSplits
from noisybench.datasets._augment import gaussian_jitter
from noisybench.errors import ConfigError
from noisybench.registry import register_dataset


@register_dataset("blobs")
class Blobs(Dataset):
    """Isotropic Gaussian classes with unit variance around random means.

    Parameters: ``n_samples`` (train + test), ``dim``, ``classes``, ``separation`` (norm scale
    of the class means: larger is easier), ``test_fraction`` and the generator ``seed``.
    """
    display_name = "Blobs"

    num_classes = 5
    default_arch = "mlp"
    params = {"n_samples": 3000, "dim": 20, "classes": 5, "separation": 2.0, "test_fraction": 0.25, "seed": 0}
    recipes = {
        "shared": {"epochs": 20, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4, "schedule": "cosine",
                "arch_kwargs": {"hidden": [128]}},
    }

    def __init__(self, root=None, **params) -> None:  # type: ignore[no-untyped-def]
        super().__init__(root, **params)
        self.num_classes = int(self.config["classes"])  # type: ignore[misc]
        if self.num_classes < 2 or int(self.config["n_samples"]) < 2 * self.num_classes:
            raise ConfigError("blobs: need classes >= 2 and n_samples >= 2 * classes")
        if not 0 < float(self.config["test_fraction"]) < 1:
            raise ConfigError("blobs: test_fraction must be in (0, 1)")

    def load(self) -> DataSplits:
        x, y, n_test = self._draw()
        return DataSplits(torch.from_numpy(x[n_test:]), y[n_test:], torch.from_numpy(x[:n_test]), y[:n_test])

    def train_class_counts(self) -> list[int]:
        _, y, n_test = self._draw()
        return np.bincount(y[n_test:], minlength=self.num_classes).tolist()

    def _draw(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Inputs and labels (train and test, shuffled) and the number of test samples (the first ones)."""
        cfg = self.config
        rng = np.random.default_rng(int(cfg["seed"]))
        n, d, c = int(cfg["n_samples"]), int(cfg["dim"]), self.num_classes
        means = rng.standard_normal((c, d)) * float(cfg["separation"]) / np.sqrt(d) * 2
        y = np.arange(n) % c
        x = means[y] + rng.standard_normal((n, d))
        order = rng.permutation(n)
        x, y = x[order].astype(np.float32), y[order].astype(np.int64)
        return x, y, int(round(n * float(cfg["test_fraction"])))

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return gaussian_jitter(x, 0.1, generator)
