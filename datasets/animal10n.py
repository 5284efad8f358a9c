"""ANIMAL-10N (Song et al., ICML 2019): 50,000 noisy training and 5,000 test images, 64x64 RGB.

Layout (as read by SELC's ``real-world_noise/data_prepare_animal10N.py``, MacLLL/SELC @ 69bcf1e):
``<root>/training/`` and
``<root>/testing/`` holding files ``<label>_<id>.<ext>``, the label being the integer before the
first underscore. Images are decoded once to uint8 (cached under the noisybench cache) and kept
in memory; the training labels are the given (noisy) ones, so ``clean_known`` is false.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisybench import facts
from noisybench.data import DataSplits
from noisybench.datasets._image_folder import ImageDataset, check_labels, decode_in_memory
from noisybench.errors import DataError
from noisybench.registry import register_dataset

LAYOUT = ("expected layout: <root>/training/<label>_<id>.jpg (50,000 files) and <root>/testing/<label>_<id>.jpg "
          "(5,000 files), label = integer before the first '_'. ANIMAL-10N is distributed on request from "
          "https://dm.kaist.ac.kr/datasets/animal-10n/ (unpack the training and testing archives into <root>)")
SIZES = {"training": 50000, "testing": 5000}
EXTENSIONS = {".jpg", ".jpeg", ".png"}


def scan_split(folder: Path, num_classes: int) -> tuple[list[Path], np.ndarray]:
    """Files of one split and the labels parsed from their names, sorted by name."""
    if not folder.is_dir():
        raise DataError(f"ANIMAL-10N: {folder} does not exist.\n{LAYOUT}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)
    if not files:
        raise DataError(f"ANIMAL-10N: no images in {folder}.\n{LAYOUT}")
    labels = []
    for path in files:
        head = path.name.split("_", 1)[0]
        if "_" not in path.name or not head.isdigit():
            raise DataError(f"ANIMAL-10N: file name {path.name!r} in {folder} is not '<label>_<id>.<ext>'")
        labels.append(int(head))
    return files, check_labels(np.asarray(labels), num_classes, str(folder))


@register_dataset("animal10n")
class Animal10N(ImageDataset):
    """ANIMAL-10N: 10 classes in 5 confusable pairs, ~8 % real label noise; test on the 5,000 test images.

    Augmentation: horizontal flip only; ImageNet normalisation (SELC protocol).
    """
    family = facts.ANIMAL_10N
    display_name = "ANIMAL-10N"

    num_classes = 10
    default_arch = "vgg19_bn"
    required = ("training", "testing")
    layout = LAYOUT
    crop = 64
    flip = True
    params = {"size": 64}
    recipes = {
        "shared": {"arch": "vgg19_bn", "epochs": 100, "batch_size": 128, "optimizer": "sgd", "lr": 0.1,
                  "momentum": 0.0, "weight_decay": 1e-3, "schedule": "step", "milestones": [50, 75], "gamma": 0.2,
                  "augment": True},
        "fast": {"arch": "airbench", "epochs": 30, "batch_size": 256, "optimizer": "sgd", "lr": 0.1,
                 "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "cosine", "augment": True,
                 "mean_last_k": 5},
    }

    def __init__(self, root: str | Path | None = None, **params: object) -> None:
        super().__init__(root, **params)
        self.crop = int(self.config["size"])

    def load(self) -> DataSplits:
        root = self.require_root(LAYOUT)
        size = int(self.config["size"])
        train_files, y_train = scan_split(root / "training", self.num_classes)
        test_files, y_test = scan_split(root / "testing", self.num_classes)
        cache = self.cache_dir()
        x_train = decode_in_memory(train_files, size, cache)
        x_test = decode_in_memory(test_files, size, cache)
        return DataSplits(x_train, y_train, x_test, y_test, clean_known=False)

    def noise_features(self, splits: DataSplits) -> np.ndarray:
        """Raw 0-255 pixels, flattened channel-first (as for CIFAR)."""
        return splits.x_train.reshape(len(splits.x_train), -1).double().numpy()
