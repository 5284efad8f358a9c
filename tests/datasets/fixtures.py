"""Tiny datasets written in the real on-disk layouts (methods.md §9), for loader tests."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from noisybench.datasets._cifar import CIFAR100_COARSE


def _images(n: int, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (n, 3072) rows (R plane, G plane, B plane) whose mean brightness encodes the label."""
    base = (labels[:, None] * 23 % 200).astype(np.int64)
    return np.clip(base + rng.integers(0, 56, (n, 3072)), 0, 255).astype(np.uint8)


def _dump(path: Path, obj: dict) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(root: Path, per_batch: int = 40, n_test: int = 50, seed: int = 0) -> Path:
    """``<root>/cifar-10-batches-py`` with 5 train batches of ``per_batch`` images, a test batch, meta."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        y = rng.integers(0, 10, per_batch)
        _dump(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": y.tolist(),
                                           "data": _images(per_batch, y, rng),
                                           "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)]})
    y = rng.integers(0, 10, n_test)
    _dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": y.tolist(),
                                  "data": _images(n_test, y, rng), "filenames": []})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072})
    return folder


def write_cifar100(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 0) -> Path:
    """``<root>/cifar-100-python`` with train, test and meta (coarse labels consistent with the real ones)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    coarse = np.asarray(CIFAR100_COARSE)
    for name, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 100, n)
        _dump(folder / name, {"fine_labels": y.tolist(), "coarse_labels": coarse[y].tolist(),
                              "data": _images(n, y, rng), "filenames": [], "batch_label": name})
    _dump(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                            "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return folder


def write_cifarn_pt(path: Path, labels: dict[str, np.ndarray | list[int]]) -> Path:
    """A torch-zip ``.pt`` like CIFAR-N's: a pickled dict of numpy arrays (written without torch.save)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{stem}/data.pkl", pickle.dumps(labels, protocol=2))
        z.writestr(f"{stem}/byteorder", "little")
        z.writestr(f"{stem}/version", "3\n")
    path.write_bytes(buffer.getvalue())
    return path


def cifar10n_labels(clean: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Human-style label sets derived from ``clean`` with known flip counts."""
    rng = np.random.default_rng(seed)
    out = {"clean_label": clean.astype(np.int64)}
    for key, rate in (("aggre_label", 0.1), ("worse_label", 0.4), ("random_label1", 0.2),
                      ("random_label2", 0.2), ("random_label3", 0.2)):
        y = clean.copy()
        idx = rng.choice(len(y), int(rate * len(y)), replace=False)
        y[idx] = (y[idx] + 1) % 10
        out[key] = y.astype(np.int64)
    return out


def _write_jpeg(path: Path, label: int, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0], 3), (label * 37) % 256, dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=95)


def write_animal10n(root: Path, n_train: int = 30, n_test: int = 10) -> Path:
    """``<root>/training`` and ``<root>/testing`` with files ``<label>_<id>.jpg`` (64x64)."""
    for folder, n in (("training", n_train), ("testing", n_test)):
        for i in range(n):
            _write_jpeg(root / folder / f"{i % 10}_{i:05d}.jpg", i % 10, (64, 64))
    return root


def write_clothing1m(root: Path, n_noisy: int = 42, n_val: int = 14, n_test: int = 14) -> Path:
    """``<root>`` = the ``images`` folder with the kv label files and key lists (keys start ``images/``)."""
    noisy, clean = [], []
    lists: dict[str, list[str]] = {"noisy_train_key_list.txt": [], "clean_val_key_list.txt": [],
                                   "clean_test_key_list.txt": []}
    for kind, n, listing in (("noisy", n_noisy, "noisy_train_key_list.txt"),
                             ("val", n_val, "clean_val_key_list.txt"), ("test", n_test, "clean_test_key_list.txt")):
        for i in range(n):
            key = f"images/{i % 10}/{kind}_{i}.jpg"
            _write_jpeg(root / key[7:], i % 14, (40, 30))
            (noisy if kind == "noisy" else clean).append(f"{key} {i % 14}")
            lists[listing].append(key)
    (root / "noisy_label_kv.txt").write_text("\n".join(noisy) + "\n")
    (root / "clean_label_kv.txt").write_text("\n".join(clean) + "\n")
    for name, keys in lists.items():
        (root / name).write_text("\n".join(keys) + "\n")
    return root


def write_webvision(root: Path, per_class: int = 2, classes: int = 52) -> Path:
    """mini-WebVision lists (``info/``), WebVision val images and ILSVRC12 val list, ``classes`` labels."""
    train, val, imnet = [], [], []
    for c in range(classes):
        for j in range(per_class):
            rel = f"google/q{c:04d}/{j}.jpg"
            _write_jpeg(root / rel, c, (48, 36))
            train.append(f"{rel} {c}")
        _write_jpeg(root / "val_images_256" / f"val{c:05d}.jpg", c, (40, 40))
        val.append(f"val{c:05d}.jpg {c}")
        _write_jpeg(root / "imagenet" / "val" / f"ILSVRC2012_val_{c:08d}.JPEG", c, (40, 40))
        imnet.append(f"ILSVRC2012_val_{c:08d}.JPEG {c}")
    (root / "info").mkdir(parents=True, exist_ok=True)
    (root / "info" / "train_filelist_google.txt").write_text("\n".join(train) + "\n")
    (root / "info" / "val_filelist.txt").write_text("\n".join(val) + "\n")
    (root / "imagenet" / "imagenet_val.txt").write_text("\n".join(imnet) + "\n")
    return root

