"""``cifar-synthetic``: random CIFAR-shaped images with a class signal, for benchmarks and tests (no files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from noisybench.data import DataSplits
from noisybench.datasets._cifar import CIFAR10_ASYM_MAP, CifarBase, _cifar_recipes
from noisybench.errors import ConfigError
from noisybench.registry import register_dataset


@register_dataset("cifar-synthetic")
class CifarSynthetic(CifarBase):
    """Random CIFAR-shaped uint8 images with a learnable class signal (benchmarks, tests; no files).

    Each class has a smooth random template (a random 3x3 colour grid, bilinearly upsampled to
    32x32, so crops and flips keep most of it); an image is a mix of its template and uniform noise.
    """
    display_name = "Synthetic CIFAR"

    num_classes = 10
    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)
    asym_maps = {"default": CIFAR10_ASYM_MAP}
    params = {"n_train": 5000, "n_test": 1000, "classes": 10, "signal": 0.5, "seed": 0}
    recipes = {**_cifar_recipes({"arch": "resnet34", "epochs": 120, "lr": 0.02, "weight_decay": 1e-3,
                                   "schedule": "step", "milestones": [40, 80], "gamma": 0.01}),
                "cpu": {"arch": "airbench", "arch_kwargs": {"widths": [16, 32, 32]}, "epochs": 2, "batch_size": 128,
                        "lr": 0.05, "nesterov": True, "schedule": "cosine", "mean_last_k": 1}}

    def __init__(self, root: str | Path | None = None, **params: Any) -> None:
        super().__init__(root, **params)
        self.num_classes = int(self.config["classes"])  # type: ignore[misc]
        if self.num_classes < 2 or int(self.config["n_train"]) < self.num_classes:
            raise ConfigError("cifar-synthetic: need classes >= 2 and n_train >= classes")

    def load(self) -> DataSplits:
        cfg = self.config
        gen = torch.Generator().manual_seed(int(cfg["seed"]))
        coarse = torch.rand(self.num_classes, 3, 3, 3, generator=gen)
        templates = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=True)

        def make(n: int) -> tuple[torch.Tensor, np.ndarray]:
            y = torch.arange(n) % self.num_classes
            y = y[torch.randperm(n, generator=gen)]
            a = float(cfg["signal"])
            x = a * templates[y] + (1 - a) * torch.rand(n, 3, 32, 32, generator=gen)
            return (x * 255).round().clamp(0, 255).to(torch.uint8), y.numpy().astype(np.int64)

        x_tr, y_tr = make(int(cfg["n_train"]))
        x_te, y_te = make(int(cfg["n_test"]))
        return DataSplits(x_tr, y_tr, x_te, y_te)
