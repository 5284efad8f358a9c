"""Helpers shared by the image-file datasets (ANIMAL-10N, Clothing1M, WebVision)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from noisybench.data import Dataset
from noisybench.data.streaming import ImageList
from noisybench.datasets._image_batch import Normalizer, center_crop, random_crop, random_flip
from noisybench.errors import ConfigError, DataError
from noisybench.io import atomic_write_bytes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_pairs(path: Path, what: str, help_text: str) -> list[tuple[str, int]]:
    """Lines ``<name> <integer label>`` of a list file; a missing file or bad line names the file and line."""
    if not path.is_file():
        raise DataError(f"{what}: {path} does not exist.\n{help_text}")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            pairs.append((" ".join(parts[:-1]), int(parts[-1])))
        except (ValueError, IndexError):
            raise DataError(f"{path}:{number}: expected '<file> <integer label>', got {line!r}") from None
        if not parts[:-1]:
            raise DataError(f"{path}:{number}: expected '<file> <integer label>', got {line!r}")
    return pairs


def read_keys(path: Path, what: str, help_text: str) -> list[str]:
    """One key per non-empty line."""
    if not path.is_file():
        raise DataError(f"{what}: {path} does not exist.\n{help_text}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """Labels as int64, refusing values outside 0..C-1."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{where}: labels must lie in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
    return labels


def balanced_subset(labels: np.ndarray, total: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Class-balanced sample: up to ``total // num_classes`` random indices of every label, sorted.

    The per-class cap is the convention of the DivideMix, ELR+ and SELC data loaders for Clothing1M.
    """
    cap = total // num_classes
    if cap < 1:
        raise ConfigError(f"a class-balanced subset of {total} samples over {num_classes} classes is empty")
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:cap] for c in range(num_classes)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def decode_in_memory(paths: Sequence[Path], size: int, cache: Path | None) -> torch.Tensor:
    """Decode image files to uint8 (N, 3, size, size), cached as ``.npy`` keyed by the file list."""
    key = hashlib.sha256("\n".join(map(str, paths)).encode() + str(size).encode()).hexdigest()[:16]
    cached = cache / f"images_{key}.npy" if cache else None
    if cached is not None and cached.is_file():
        return torch.from_numpy(np.load(cached, allow_pickle=False))
    images = ImageList(list(paths), size)
    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8)
    for i in range(len(images)):
        out[i] = images.decode(i)
    if cached is not None:
        buffer = io.BytesIO()
        np.save(buffer, out.numpy(), allow_pickle=False)
        atomic_write_bytes(cached, buffer.getvalue())
    return out


class ImageDataset(Dataset):
    """Base of datasets of photos: uint8 storage, random crop (+ flip) on the device, ImageNet normalisation."""

    crop: int = 224
    pad: int = 0
    flip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __init__(self, root: str | Path | None = None, **params: object) -> None:
        super().__init__(root, **params)
        self._normalize = Normalizer(self.mean, self.std)

    #: Files and folders under the root that :meth:`load` reads (relative paths), and the layout help.
    required: tuple[str, ...] = ()
    layout: str = ""

    def check_ready(self) -> None:
        root = self.require_root(self.layout)
        missing = [name for name in self.required if not (root / name).exists()]
        if missing:
            raise DataError(f"dataset {self.name!r}: {root} lacks {', '.join(missing)}.\n{self.layout}")

    def require_root(self, help_text: str) -> Path:
        """The data root, or a clear error with the expected layout."""
        if self.root is None:
            raise DataError(f"dataset {self.name!r} needs a data root: pass --data-dir DIR, "
                            f"set [data] root in the grid or set $NOISYBENCH_DATA.\n{help_text}")
        if not self.root.is_dir():
            raise DataError(f"dataset {self.name!r}: data root {self.root} is not a directory.\n{help_text}")
        return self.root

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random ``crop`` window (after ``pad`` zero padding), then a random horizontal flip."""
        if x.shape[-1] != self.crop or self.pad:
            x = random_crop(x, self.crop, self.pad, generator)
        return random_flip(x, generator) if self.flip else x

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Central ``crop`` window (un-augmented batches), float, normalised."""
        return self._normalize(center_crop(x, self.crop))

    def noise_features(self, splits: object) -> np.ndarray:
        """Instance-dependent noise is not defined on these real-noise datasets."""
        raise ConfigError(f"noise 'idn' is not offered on {self.name!r}: its labels are already noisy "
                          "(use 'none', or a synthetic family such as 'sym')")
