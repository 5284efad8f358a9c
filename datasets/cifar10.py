"""CIFAR-10 (Krizhevsky, 2009) from the python pickles torchvision reads (``datasets/cifar.py``)."""

from __future__ import annotations

from noisybench import facts
from noisybench.datasets._cifar import CIFAR10_ASYM_MAP, CifarBase, _cifar_recipes
from noisybench.registry import register_dataset


@register_dataset("cifar10")
class CIFAR10(CifarBase):
    """CIFAR-10 (50,000 train / 10,000 test, 10 classes) from ``cifar-10-batches-py``."""
    display_name = "CIFAR-10"
    family = facts.CIFAR_10

    num_classes = 10
    folder = "cifar-10-batches-py"
    archive = "cifar-10-python.tar.gz"
    torchvision_class = "CIFAR10"
    train_files = (("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                   ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                   ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                   ("data_batch_4", "634d18415352ddfa80567beed471001a"),
                   ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"))
    test_files = (("test_batch", "40351d587109b95175f43aff81a1287e"),)
    meta_file = ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888")
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2023, 0.1994, 0.2010)
    asym_maps = {"default": CIFAR10_ASYM_MAP}
    recipes = _cifar_recipes({"arch": "resnet34", "epochs": 120, "lr": 0.02, "weight_decay": 1e-3,
                                "schedule": "step", "milestones": [40, 80], "gamma": 0.01})
