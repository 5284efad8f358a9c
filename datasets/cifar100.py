"""CIFAR-100 (Krizhevsky, 2009) from the python pickles torchvision reads (``datasets/cifar.py``)."""

from __future__ import annotations

import numpy as np

from noisybench import facts
from noisybench.data import DataSplits
from noisybench.datasets._cifar import CIFAR100_BLOCK5_MAP, CIFAR100_COARSE, CifarBase, _cifar_recipes, superclass_map
from noisybench.errors import DataError
from noisybench.registry import register_dataset


@register_dataset("cifar100")
class CIFAR100(CifarBase):
    """CIFAR-100 (50,000 / 10,000, 100 fine classes) from ``cifar-100-python``.

    ``asym`` is the papers' block-of-5 map; ``asym-superclass`` flips within true coarse classes.
    """
    display_name = "CIFAR-100"
    family = facts.CIFAR_100

    num_classes = 100
    folder = "cifar-100-python"
    archive = "cifar-100-python.tar.gz"
    torchvision_class = "CIFAR100"
    train_files = (("train", "16019d7e3df5f24257cddd939b257f8d"),)
    test_files = (("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),)
    meta_file = ("meta", "7973b15100ade9c7d40fb424638fde48")
    label_key = "fine_labels"
    mean = (0.5071, 0.4867, 0.4408)
    std = (0.2675, 0.2565, 0.2761)
    asym_maps = {"default": CIFAR100_BLOCK5_MAP, "superclass": superclass_map(CIFAR100_COARSE)}
    recipes = _cifar_recipes({"arch": "resnet34", "epochs": 150, "lr": 0.02, "weight_decay": 1e-3,
                                "schedule": "step", "milestones": [80, 120], "gamma": 0.01})

    def load(self) -> DataSplits:
        splits = super().load()
        coarse = self.train_extra["coarse_labels"]
        if len(coarse) == len(splits.y_train):
            pairs = np.unique(np.stack([splits.y_train, coarse]), axis=1)
            if not np.array_equal(np.asarray(CIFAR100_COARSE)[pairs[0]], pairs[1]):
                raise DataError(f"{self.data_dir()}: coarse_labels disagree with the CIFAR-100 super-classes; "
                                "asym-superclass would be wrong. Re-extract cifar-100-python.tar.gz")
        return splits
