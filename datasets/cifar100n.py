"""CIFAR-100N: CIFAR-100 images with human labels (Wei et al., ICLR 2022; UCSC-REAL/cifar-10-100n)."""

from __future__ import annotations

from noisybench import facts
from noisybench.data import DataSplits
from noisybench.datasets._cifarn import _SHARED, CifarNMixin
from noisybench.datasets.cifar100 import CIFAR100
from noisybench.registry import register_dataset


@register_dataset("cifar100n")
class CIFAR100N(CifarNMixin, CIFAR100):
    """CIFAR-100N (fine labels): ``human:noisy`` (40.20 % wrong)."""
    display_name = "CIFAR-100N"
    family, base_family = facts.CIFAR_100N, facts.CIFAR_100

    label_file = "CIFAR-100_human.pt"
    label_sha256 = "bd2d80409754d420292d622e15e25248ba21e37d27429efac49c8da723f44394"
    label_keys = {"noisy": "noisy_label", "clean": "clean_label"}
    human_label_sets = tuple(label_keys)
    params = {"download": False, "label_file": ""}
    recipes = {**CIFAR100.recipes, "shared": _SHARED}

    def load(self) -> DataSplits:
        return self.attach_labels(super().load())
