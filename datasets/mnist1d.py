"""MNIST-1D generated locally with the ``mnist1d`` package and cached on disk."""

from __future__ import annotations

import io

import numpy as np
import torch

from noisybench.data import AugmentPolicy, Dataset, DataSplits
from noisybench.datasets._augment import gaussian_jitter, random_mask_1d, random_shift_1d
from noisybench.datasets.digits import MNIST_ASYM_MAP
from noisybench.io import atomic_write_bytes
from noisybench.registry import register_dataset


@register_dataset("mnist1d")
class MNIST1D(Dataset):
    """MNIST-1D (Greydanus 2020): 1-D templates of the ten digits, length 40, standardised.

    Generated with ``mnist1d.data.make_dataset`` (never ``get_dataset``, which tries to download)
    with ``num_samples`` (default 10,000: twice the package default) and an 80/20 train/test
    split; cached as ``.npz`` under the cache directory. Augmentation: shifts of up to two steps and jitter
    of 0.05; policy ``strong`` (ours, ``suite``): shifts of up to four steps, jitter of 0.1, a zeroed window
    of 6 steps.
    """
    display_name = "MNIST-1D"

    num_classes = 10
    default_arch = "cnn1d"
    asym_maps = {"default": MNIST_ASYM_MAP}
    params = {"num_samples": 10000, "seed": 42}
    augment_policies = {"strong": AugmentPolicy(
        "shifts up to 4 steps, Gaussian jitter 0.1, a zeroed window of 6 steps (the suite's strong view)", "suite",
        lambda ds, x, g: random_mask_1d(gaussian_jitter(random_shift_1d(x, 4, g), 0.1, g), 6, g))}
    recipes = {
        "shared": {"epochs": 30, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4, "schedule": "cosine"},
    }

    def load(self) -> DataSplits:
        n, seed = int(self.config["num_samples"]), int(self.config["seed"])
        path = self.cache_dir() / f"mnist1d_n{n}_seed{seed}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        else:
            arrays = self._generate(n, seed)
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            atomic_write_bytes(path, buffer.getvalue())
        return DataSplits(
            torch.from_numpy(arrays["x"].astype(np.float32)), arrays["y"].astype(np.int64),
            torch.from_numpy(arrays["x_test"].astype(np.float32)), arrays["y_test"].astype(np.int64),
        )

    @staticmethod
    def _generate(n: int, seed: int) -> dict[str, np.ndarray]:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples, args.seed = n, seed
        data = make_dataset(args)
        return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return gaussian_jitter(random_shift_1d(x, 2, generator), 0.05, generator)
