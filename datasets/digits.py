"""scikit-learn's bundled 8x8 digits (1,797 samples, 10 classes), no download."""

from __future__ import annotations

import numpy as np
import torch

from noisybench.data import AugmentPolicy, Dataset, DataSplits
from noisybench.datasets._augment import gaussian_jitter, random_cutout_2d, random_shift_2d
from noisybench.registry import register_dataset

#: MNIST asymmetric map of the loss-correction literature (Patrini et al., CVPR 2017; giorgiop/loss-correction
#: ``noise.py``, ``noisify_mnist_asymmetric``), applied to digits as a suite convention.
MNIST_ASYM_MAP = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}


@register_dataset("digits")
class Digits(Dataset):
    """sklearn ``load_digits``: fixed stratified 20 % test split (seed 0), pixels scaled to [0, 1].

    Augmentation: shifts of up to one pixel plus small Gaussian jitter. Policy ``strong`` (ours, ``suite``):
    shifts of up to two pixels, jitter of 0.1 and a zeroed 3 x 3 square.
    """
    display_name = "Digits"

    num_classes = 10
    default_arch = "mlp"
    asym_maps = {"default": MNIST_ASYM_MAP}
    augment_policies = {"strong": AugmentPolicy(
        "shifts up to 2 pixels, Gaussian jitter 0.1, a zeroed 3 x 3 square (the suite's strong view)", "suite",
        lambda ds, x, g: random_cutout_2d(gaussian_jitter(random_shift_2d(x, 2, g), 0.1, g), 3, g))}
    recipes = {
        "shared": {"epochs": 40, "batch_size": 64, "lr": 0.05, "weight_decay": 5e-4, "schedule": "cosine"},
    }

    def load(self) -> DataSplits:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        x = (bunch.images / 16.0).astype(np.float32)
        y = bunch.target.astype(np.int64)
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
        return DataSplits(torch.from_numpy(x_tr), y_tr, torch.from_numpy(x_te), y_te)

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return gaussian_jitter(random_shift_2d(x, 1, generator), 0.05, generator)

    def noise_features(self, splits: DataSplits) -> np.ndarray:
        # Raw 0-16 pixel values, as the part-dependent generator uses raw pixels.
        return (splits.x_train.reshape(len(splits.x_train), -1).double() * 16.0).numpy()
