"""Clothing1M (Xiao et al., CVPR 2015): 1M noisy training images, clean validation and test lists.

Layout (as the official loaders of DivideMix, ELR+ and SELC read it): the root is the ``images`` folder
holding ``noisy_label_kv.txt``, ``clean_label_kv.txt`` (lines ``images/<...>.jpg <label>``) and
``noisy_train_key_list.txt``, ``clean_val_key_list.txt``, ``clean_test_key_list.txt``. Keys
start with ``images/``; that prefix is replaced by the root.

Images stream through DataLoader workers (decoded to 256x256 uint8: shorter side to 256, central
square), then a random 224 crop and flip on the device; the test transform is the central 224.
Options: ``subset`` draws one fixed class-balanced subset (by noisy label, at most subset/14 per
class: ELR+ 192,000, SELC 128,000); ``epoch_samples`` draws a fresh class-balanced subset every
epoch (DivideMix: 32,000). The clean validation set is scored every epoch as ``clean_val_acc``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisybench import facts
from noisybench.data import DataSplits
from noisybench.data.streaming import ImageList
from noisybench.datasets._image_folder import ImageDataset, balanced_subset, check_labels, read_keys, read_pairs
from noisybench.errors import ConfigError, DataError
from noisybench.registry import register_dataset

CLASSES = ("T-shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker", "Jacket", "Down Coat",
           "Suit", "Shawl", "Dress", "Vest", "Underwear")
LAYOUT = ("expected layout: <root> = the Clothing1M 'images' folder, holding noisy_label_kv.txt, clean_label_kv.txt, "
          "noisy_train_key_list.txt, clean_val_key_list.txt, clean_test_key_list.txt and the image folders "
          "(<root>/0/.../x.jpg for key images/0/.../x.jpg). Clothing1M is distributed on request by its authors "
          "(https://github.com/Cysu/noisy_label)")
SIZES = {"noisy_train": 1000000, "clean_val": 14313, "clean_test": 10526}
WEIGHTS = "~/.cache/noisybench/weights/resnet50-0676ba61.pth"


@register_dataset("clothing1m")
class Clothing1M(ImageDataset):
    """Clothing1M, 14 classes; train on the noisy list, test on the clean test list (top-1)."""
    family = facts.CLOTHING_1M
    display_name = "Clothing1M"

    num_classes = 14
    default_arch = "resnet50"
    required = ("noisy_label_kv.txt", "clean_label_kv.txt", "noisy_train_key_list.txt", "clean_val_key_list.txt",
                "clean_test_key_list.txt")
    layout = LAYOUT
    crop = 224
    mean = (0.6959, 0.6537, 0.6371)
    std = (0.3113, 0.3192, 0.3214)
    val_fraction = 0.01
    params = {"subset": 0, "subset_seed": 0, "epoch_samples": 0, "image_size": 256, "crop": 224}
    recipes = {
        "shared": {"arch": "resnet50", "arch_kwargs": {"pretrained": WEIGHTS}, "epochs": 15, "batch_size": 64,
                  "optimizer": "sgd", "lr": 0.002, "momentum": 0.9, "weight_decay": 1e-3, "schedule": "step",
                  "milestones": [7], "gamma": 0.1, "augment": True, "eval_batch_size": 256},
        "fast": {"arch": "resnet50", "arch_kwargs": {"pretrained": WEIGHTS}, "epochs": 5, "batch_size": 64,
                 "optimizer": "sgd", "lr": 0.002, "momentum": 0.9, "weight_decay": 1e-3, "schedule": "cosine",
                 "augment": True, "eval_batch_size": 256, "mean_last_k": 2},
    }

    def __init__(self, root: str | Path | None = None, **params: object) -> None:
        super().__init__(root, **params)
        self.crop = int(self.config["crop"])
        if not 1 <= self.crop <= int(self.config["image_size"]):
            raise ConfigError(f"{self.name}: crop must be in 1..image_size, got {self.crop}")
        for key in ("subset", "epoch_samples"):
            n = int(self.config[key])
            if n and n < self.num_classes:
                raise ConfigError(f"clothing1m: {key} must be 0 (off) or at least {self.num_classes}, got {n}")
        if int(self.config["subset"]) and int(self.config["epoch_samples"]):
            raise ConfigError("clothing1m: choose either subset (one fixed draw) or epoch_samples (a draw per epoch)")

    def check_ready(self) -> None:
        missing = [name for name in self.required if not (self.image_root() / name).exists()]
        if missing:
            raise DataError(f"dataset 'clothing1m': {self.image_root()} lacks {', '.join(missing)}.\n{LAYOUT}")

    def image_root(self) -> Path:
        """The folder with the list files: the root, or ``<root>/images``."""
        root = self.require_root(LAYOUT)
        if not (root / "noisy_label_kv.txt").is_file() and (root / "images" / "noisy_label_kv.txt").is_file():
            return root / "images"
        return root

    def split(self, keys_file: str, kv_file: str) -> tuple[list[Path], np.ndarray]:
        """Image paths and labels of the keys in ``keys_file``, labelled from ``kv_file``."""
        root = self.image_root()
        kv = dict(read_pairs(root / kv_file, "clothing1m", LAYOUT))
        keys = read_keys(root / keys_file, "clothing1m", LAYOUT)
        missing = [k for k in keys if k not in kv]
        if missing:
            raise DataError(f"clothing1m: {len(missing)} keys of {keys_file} have no label in {kv_file} "
                            f"(first: {missing[0]}); the list and label files come from different releases?")
        paths = [root / (k[7:] if k.startswith("images/") else k) for k in keys]
        return paths, check_labels(np.asarray([kv[k] for k in keys]), self.num_classes, str(root / kv_file))

    def load(self) -> DataSplits:
        size = int(self.config["image_size"])
        train_paths, y_train = self.split("noisy_train_key_list.txt", "noisy_label_kv.txt")
        if int(self.config["subset"]):
            rng = np.random.default_rng(int(self.config["subset_seed"]))
            keep = balanced_subset(y_train, int(self.config["subset"]), self.num_classes, rng)
            train_paths, y_train = [train_paths[i] for i in keep], y_train[keep]
        val_paths, y_val = self.split("clean_val_key_list.txt", "clean_label_kv.txt")
        test_paths, y_test = self.split("clean_test_key_list.txt", "clean_label_kv.txt")
        return DataSplits(ImageList(train_paths, size), y_train, ImageList(test_paths, size), y_test,
                          clean_known=False, extra_test={"clean_val": (ImageList(val_paths, size), y_val)})

    def epoch_indices(self, y_noisy: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray | None:
        """A fresh class-balanced draw of ``epoch_samples`` (by noisy label) per epoch, when set."""
        n = int(self.config["epoch_samples"])
        return balanced_subset(y_noisy, n, self.num_classes, rng) if n else None
