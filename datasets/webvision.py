"""mini-WebVision (WebVision 1.0 Google subset, first 50 classes) with WebVision and ILSVRC12 val.

Layout: ``<root>/info/train_filelist_google.txt`` (``<relative path> <label>``,
images at ``<root>/<relative path>``), ``<root>/info/val_filelist.txt`` (images under
``<root>/val_images_256/``), and ILSVRC12 val as ``<root>/imagenet/imagenet_val.txt``
(``<file> <label>``, images under ``<root>/imagenet/val/``). The DivideMix folder form
``<root>/imagenet/val/<c>/*`` is read too, and :func:`imagenet_folder_to_list` writes the
list file from it. Labels >= ``classes`` (default 50) are dropped everywhere.

The test set is WebVision val (``test_acc``, ``test_top5``); ILSVRC12 val is scored every epoch
as ``ilsvrc12_acc`` / ``ilsvrc12_top5``. Images stream through DataLoader workers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisybench import facts
from noisybench.data import DataSplits
from noisybench.data.streaming import ImageList
from noisybench.datasets._image_folder import ImageDataset, check_labels, read_pairs
from noisybench.errors import ConfigError, DataError
from noisybench.registry import register_dataset

LAYOUT = ("expected layout: <root>/info/train_filelist_google.txt, <root>/info/val_filelist.txt, "
          "<root>/val_images_256/, the Google images at the paths the train list names, and ILSVRC12 val as "
          "<root>/imagenet/imagenet_val.txt + <root>/imagenet/val/ (or folders <root>/imagenet/val/<0..49>/). "
          "WebVision 1.0: https://data.vision.ee.ethz.ch/cvl/webvision/download.html; ILSVRC12 val: "
          "https://image-net.org (select the 50 synsets of WebVision's info/synsets.txt)")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png"}


def imagenet_folder_entries(folder: Path) -> list[tuple[str, int]]:
    """``(relative file, label)`` of the folder form ``<folder>/<label>/<file>`` (DivideMix layout)."""
    entries = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()):
        entries += [(f"{sub.name}/{f.name}", int(sub.name)) for f in sorted(sub.iterdir())
                    if f.suffix.lower() in IMAGE_EXTENSIONS]
    return entries


def imagenet_folder_to_list(root: Path) -> Path:
    """Write ``<root>/imagenet/imagenet_val.txt`` from the folder form; return its path."""
    folder = Path(root) / "imagenet" / "val"
    entries = imagenet_folder_entries(folder) if folder.is_dir() else []
    if not entries:
        raise DataError(f"no folder-form ILSVRC12 val under {folder} (expected {folder}/<label>/<file>.JPEG)")
    out = Path(root) / "imagenet" / "imagenet_val.txt"
    out.write_text("".join(f"{name} {label}\n" for name, label in entries))
    return out


@register_dataset("webvision")
class WebVision(ImageDataset):
    """mini-WebVision: train on the Google images of the first 50 classes; top-1/top-5 on two val sets."""
    family = facts.WEB_VISION
    display_name = "WebVision"

    num_classes = 50
    default_arch = "resnet50"
    required = ("info/train_filelist_google.txt", "info/val_filelist.txt", "val_images_256", "imagenet")
    layout = LAYOUT
    report_top5 = True
    crop = 224
    val_fraction = 0.05
    params = {"classes": 50, "image_size": 256, "crop": 224}
    recipes = {
        # The papers use InceptionResNetV2 (not in torchvision); the suite substitutes ResNet-50 from scratch.
        "shared": {"arch": "resnet50", "epochs": 100, "batch_size": 32, "optimizer": "sgd", "lr": 0.02,
                  "momentum": 0.9, "weight_decay": 5e-4, "schedule": "step", "milestones": [50], "gamma": 0.1,
                  "augment": True, "eval_batch_size": 256},
        "fast": {"arch": "resnet50", "epochs": 30, "batch_size": 64, "optimizer": "sgd", "lr": 0.05,
                 "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "cosine", "augment": True,
                 "eval_batch_size": 256, "mean_last_k": 5},
    }

    def __init__(self, root: str | Path | None = None, **params: object) -> None:
        super().__init__(root, **params)
        self.crop = int(self.config["crop"])
        if not 1 <= self.crop <= int(self.config["image_size"]):
            raise ConfigError(f"{self.name}: crop must be in 1..image_size, got {self.crop}")
        classes = int(self.config["classes"])
        if not 2 <= classes <= 1000:
            raise ConfigError(f"webvision: classes must be in 2..1000, got {classes}")
        self.num_classes = classes  # type: ignore[misc]

    def _listed(self, list_file: Path, image_dir: Path) -> tuple[list[Path], np.ndarray]:
        pairs = [(name, y) for name, y in read_pairs(list_file, "webvision", LAYOUT) if y < self.num_classes]
        if not pairs:
            raise DataError(f"webvision: {list_file} has no images with label < {self.num_classes}")
        labels = check_labels(np.asarray([y for _, y in pairs]), self.num_classes, str(list_file))
        return [image_dir / name for name, _ in pairs], labels

    def imagenet_split(self) -> tuple[list[Path], np.ndarray]:
        """ILSVRC12 val (list form, else the folder form)."""
        root = self.require_root(LAYOUT)
        list_file, folder = root / "imagenet" / "imagenet_val.txt", root / "imagenet" / "val"
        if not list_file.is_file() and folder.is_dir():
            pairs = [(n, y) for n, y in imagenet_folder_entries(folder) if y < self.num_classes]
            return [folder / n for n, _ in pairs], np.asarray([y for _, y in pairs], dtype=np.int64)
        return self._listed(list_file, folder)

    def load(self) -> DataSplits:
        root = self.require_root(LAYOUT)
        size = int(self.config["image_size"])
        train_paths, y_train = self._listed(root / "info" / "train_filelist_google.txt", root)
        val_paths, y_val = self._listed(root / "info" / "val_filelist.txt", root / "val_images_256")
        im_paths, y_im = self.imagenet_split()
        return DataSplits(ImageList(train_paths, size), y_train, ImageList(val_paths, size), y_val,
                          clean_known=False, extra_test={"ilsvrc12": (ImageList(im_paths, size), y_im)})
