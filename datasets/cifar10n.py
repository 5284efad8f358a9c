"""CIFAR-10N: CIFAR-10 images with human labels (Wei et al., ICLR 2022; UCSC-REAL/cifar-10-100n)."""

from __future__ import annotations

from noisybench import facts
from noisybench.data import DataSplits
from noisybench.datasets._cifarn import _SHARED, CifarNMixin
from noisybench.datasets.cifar10 import CIFAR10
from noisybench.registry import register_dataset


@register_dataset("cifar10n")
class CIFAR10N(CifarNMixin, CIFAR10):
    """CIFAR-10N: ``human:aggre`` (9.01 % wrong), ``human:random1..3`` (~17-18 %), ``human:worst`` (40.21 %)."""
    display_name = "CIFAR-10N"
    family, base_family = facts.CIFAR_10N, facts.CIFAR_10

    label_file = "CIFAR-10_human.pt"
    label_sha256 = "873e69c39cb9b5e97fb6bae2d60bb59b38a5cbc31d2b868f7903dcb2b9dd2310"
    label_keys = {"aggre": "aggre_label", "random1": "random_label1", "random2": "random_label2",
                  "random3": "random_label3", "worst": "worse_label", "clean": "clean_label"}
    human_label_sets = tuple(label_keys)
    params = {"download": False, "label_file": ""}
    recipes = {**CIFAR10.recipes, "shared": _SHARED}

    def load(self) -> DataSplits:
        return self.attach_labels(super().load())
