"""What the CIFAR datasets share (``cifar10``, ``cifar100``, ``cifar-synthetic`` and the CIFAR-N
versions): the python pickles of the CIFAR page as torchvision's ``datasets/cifar.py`` reads them, class maps,
recipes.

Images are kept as uint8 (N, 3, 32, 32); the trainer moves them to the device once, and
:meth:`augment` (random crop with 4-pixel padding, horizontal flip) and :meth:`preprocess`
(float, per-channel normalisation) run on whole batches there: the fast path. The papers' other
policies (rotations, Keras shifts, AutoAugment, RandAugment) are named in :mod:`._policies`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from noisybench.data import Dataset, DataSplits
from noisybench.datasets._image_batch import Normalizer, random_crop, random_flip
from noisybench.datasets._policies import cifar_policies
from noisybench.datasets._safe_pickle import load_cifar_pickle, verify_checksum
from noisybench.errors import DataError

#: CIFAR-10 asymmetric map of DivideMix, ELR and giorgiop/loss-correction ``noise.py`` (Patrini et al., CVPR 2017):
#: truck->automobile, bird->airplane, deer->horse, cat<->dog.
CIFAR10_ASYM_MAP = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
#: CIFAR-100 ``asym``: blocks of 5 consecutive fine labels, i -> i+1 inside the block (ELR, SELC; the
#: ``build_for_cifar100`` map of giorgiop/loss-correction). Fine labels are alphabetical: blocks are not super-classes.
CIFAR100_BLOCK5_MAP = {i: (i // 5) * 5 + (i % 5 + 1) % 5 for i in range(100)}
#: Coarse (super-class) id of fine classes 0..99 (the pickle's coarse_labels; CIFAR-100N's clean_coarse_label).
CIFAR100_COARSE = [int(v) for v in (
    "4,1,14,8,0,6,7,7,18,3,3,14,9,18,7,11,3,9,7,11,6,11,5,10,7,6,13,15,3,15,0,11,1,10,12,14,16,9,11,5,5,19,8,8,15,13,14,"
    "17,18,10,16,4,17,4,2,0,17,4,18,17,10,3,2,12,12,16,12,1,9,19,2,10,0,1,16,12,9,13,15,13,16,19,2,4,6,19,5,5,8,19,18,1,"
    "2,15,6,0,17,8,14,13"
).split(",")]


def superclass_map(coarse: list[int]) -> dict[int, int]:
    """``asym-superclass``: inside each coarse class, its sorted fine classes f_0..f_4 map f_j -> f_(j+1 mod 5)."""
    mapping: dict[int, int] = {}
    for group in sorted(set(coarse)):
        fine = sorted(i for i, c in enumerate(coarse) if c == group)
        mapping.update({f: fine[(j + 1) % len(fine)] for j, f in enumerate(fine)})
    return mapping


def _cifar_recipes(shared: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``shared`` recipe (ELR's CIFAR recipe, shengliu66/ELR @ 934af53 configs, adopted for every method) and
    ``fast``."""
    fast = {"arch": "airbench", "epochs": 30, "batch_size": 256, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
            "nesterov": True, "weight_decay": 5e-4, "schedule": "cosine", "augment": True, "mean_last_k": 5}
    return {"shared": {"batch_size": 128, "optimizer": "sgd", "momentum": 0.9, "augment": True, **shared}, "fast": fast}


class CifarBase(Dataset):
    """Shared reader of the CIFAR python batches; subclasses name files, keys and checksums."""

    folder: ClassVar[str] = ""
    archive: ClassVar[str] = ""
    train_files: ClassVar[tuple[tuple[str, str], ...]] = ()
    test_files: ClassVar[tuple[tuple[str, str], ...]] = ()
    meta_file: ClassVar[tuple[str, str]] = ("", "")
    label_key: ClassVar[str] = "labels"
    torchvision_class: ClassVar[str] = ""
    mean: ClassVar[tuple[float, float, float]] = (0.5, 0.5, 0.5)
    std: ClassVar[tuple[float, float, float]] = (0.25, 0.25, 0.25)
    default_arch = "resnet34"
    val_fraction = 0.1
    params: ClassVar[dict[str, Any]] = {"download": False}
    augment_policies = cifar_policies()
    can_skip_normalization = True

    def __init__(self, root: str | Path | None = None, **params: Any) -> None:
        super().__init__(root, **params)
        self._normalize = Normalizer(self.mean, self.std)

    def data_dir(self) -> Path:
        """The folder holding the batches: ``<root>/<folder>`` (or ``root`` itself if it is that folder)."""
        if self.root is None:
            raise DataError(f"dataset {self.name!r} needs a data root: pass --data-dir DIR, "
                            f"set [data] root in the grid or set $NOISYBENCH_DATA, where DIR holds {self.folder}/\n"
                            f"{self.layout_help()}")
        return self.root if self.root.name == self.folder else self.root / self.folder

    def layout_help(self) -> str:
        """The expected files, and where to get them."""
        files = ", ".join(n for n, _ in (*self.train_files, *self.test_files, self.meta_file))
        return (f"expected layout: <root>/{self.folder}/{{{files}}}, as unpacked from {self.archive} "
                f"(https://www.cs.toronto.edu/~kriz/cifar.html, or torchvision.datasets.{self.torchvision_class}"
                f"(root, download=True); or set [datasets.{self.name}] download = true when online)")

    def missing_files(self) -> list[str]:
        """Names of expected files that are absent."""
        folder = self.data_dir()
        return [n for n, _ in (*self.train_files, *self.test_files, self.meta_file) if not (folder / n).is_file()]

    def input_files(self) -> list[Path]:
        folder = self.data_dir()
        return [folder / n for n, _ in (*self.train_files, *self.test_files, self.meta_file)]

    def check_ready(self) -> None:
        missing = self.missing_files()
        if missing and not self.config.get("download"):
            raise DataError(
                f"dataset {self.name!r}: {self.data_dir()} lacks {', '.join(missing)}.\n{self.layout_help()}"
            )

    def load(self) -> DataSplits:
        if self.missing_files() and self.config.get("download"):
            self._download()
        self.check_ready()
        x_train, y_train, extra = self._read(self.train_files)
        x_test, y_test, _ = self._read(self.test_files)
        self.train_extra = extra
        return DataSplits(x_train, y_train, x_test, y_test)

    def _download(self) -> None:
        import torchvision

        assert self.root is not None
        if not self.torchvision_class:
            raise DataError(f"dataset {self.name!r} cannot be downloaded")
        try:  # torchvision verifies the archive's md5 and unpacks it into root
            builder = getattr(torchvision.datasets, self.torchvision_class)
            builder(str(self.data_dir().parent), train=True, download=True)
        except (OSError, RuntimeError) as exc:
            raise DataError(f"dataset {self.name!r}: download failed ({exc}); are you online?\n"
                            f"{self.layout_help()}") from None

    def _read(self, files: tuple[tuple[str, str], ...]) -> tuple[torch.Tensor, np.ndarray, dict[str, np.ndarray]]:
        images, labels, coarse = [], [], []
        for name, md5 in files:
            path = self.data_dir() / name
            verify_checksum(path, md5)
            batch = load_cifar_pickle(path)
            data, y = np.asarray(batch.get("data")), batch.get(self.label_key)
            if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8 or y is None:
                raise DataError(f"{path}: expected 'data' uint8 (N, 3072) and '{self.label_key}'; "
                                f"found data {data.dtype} {data.shape}. Re-extract {self.archive}")
            if len(y) != len(data):
                raise DataError(f"{path}: {len(y)} labels for {len(data)} images; the label list must match "
                                f"the images one to one. Re-extract {self.archive}")
            images.append(data.reshape(-1, 3, 32, 32))
            labels.append(np.asarray(y, dtype=np.int64))
            coarse.append(np.asarray(batch.get("coarse_labels", []), dtype=np.int64))
        y_all = np.concatenate(labels)
        if y_all.min(initial=0) < 0 or y_all.max(initial=0) >= self.num_classes:
            raise DataError(f"{self.data_dir()}: labels outside 0..{self.num_classes - 1}; wrong dataset folder?")
        return torch.from_numpy(np.concatenate(images)), y_all, {"coarse_labels": np.concatenate(coarse)}

    def class_names(self) -> list[str]:
        """Class names from the meta file."""
        meta = load_cifar_pickle(self.data_dir() / self.meta_file[0])
        key = "label_names" if "label_names" in meta else "fine_label_names"
        return [str(n) for n in meta.get(key, [])]

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random 32x32 crop of the 4-pixel zero-padded image, then a random horizontal flip."""
        return random_flip(random_crop(x, 32, 4, generator), generator)

    def preprocess(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """uint8 (or float on the 0-255 scale) -> float32, normalised with the dataset's channel mean and std;
        ``normalize=False``: scaled to [0, 1] only (``ToTensor()`` without ``Normalize``)."""
        return self._normalize(x) if normalize else x.float().div(255)
