"""ANIMAL-10N, Clothing1M and mini-WebVision on fixtures in their real on-disk layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from noisybench.data import create_dataset
from noisybench.data.streaming import ImageList
from noisybench.datasets._image_folder import balanced_subset
from noisybench.datasets.webvision import imagenet_folder_to_list
from noisybench.errors import ConfigError, DataError
from tests.datasets.fixtures import write_animal10n, write_clothing1m, write_webvision


def test_animal10n_labels_from_file_names_and_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NOISYBENCH_CACHE", str(tmp_path / "cache"))
    root = write_animal10n(tmp_path / "animal", n_train=30, n_test=10)
    ds = create_dataset("animal10n", root=root)
    s = ds.load()
    assert s.x_train.shape == (30, 3, 64, 64) and s.x_train.dtype == torch.uint8 and not s.clean_known
    assert s.y_train.tolist() == [int(p.name.split("_")[0]) for p in sorted((root / "training").iterdir())]
    one = int(np.flatnonzero(s.y_train == 1)[0])
    assert abs(int(s.x_train[one, 0, 5, 5]) - 37) <= 2  # label-1 images are filled with 37
    assert len(list((tmp_path / "cache" / "animal10n").glob("images_*.npy"))) == 2
    assert torch.equal(create_dataset("animal10n", root=root).load().x_train, s.x_train)
    out = ds.augment(s.x_train, torch.Generator().manual_seed(0))  # flip only
    assert out.shape == s.x_train.shape


def test_animal10n_bad_names_and_missing_folders(tmp_path: Path) -> None:
    root = write_animal10n(tmp_path / "animal", n_train=4, n_test=2)
    with pytest.raises(DataError, match="testing"):
        create_dataset("animal10n", root=tmp_path / "empty_but_missing").load()
    (root / "training" / "cat.jpg").write_bytes((root / "training" / "0_00000.jpg").read_bytes())
    with pytest.raises(DataError, match="'cat.jpg'.*<label>_<id>"):
        create_dataset("animal10n", root=root).load()


def test_clothing1m_lists_kv_and_prefix(tmp_path: Path) -> None:
    root = write_clothing1m(tmp_path / "images", n_noisy=42, n_val=14, n_test=14)
    ds = create_dataset("clothing1m", root=root, image_size=36, crop=32)
    s = ds.load()
    assert isinstance(s.x_train, ImageList) and s.x_train.shape == (42, 3, 36, 36) and not s.clean_known
    assert s.y_train.tolist() == [i % 14 for i in range(42)]
    assert Path(s.x_train.paths[0]) == root / "0" / "noisy_0.jpg"  # "images/" replaced by the root
    assert len(s.extra_test["clean_val"][1]) == 14 and len(s.y_test) == 14
    img = s.x_train[3]
    assert img.shape == (3, 36, 36) and img.dtype == torch.uint8
    # the parent of "images" works too
    assert len(create_dataset("clothing1m", root=tmp_path, image_size=36, crop=32).load().y_train) == 42


def test_clothing1m_refuses_unlabelled_keys_and_bad_lines(tmp_path: Path) -> None:
    root = write_clothing1m(tmp_path / "images", n_noisy=14, n_val=14, n_test=14)
    with open(root / "noisy_train_key_list.txt", "a") as f:
        f.write("images/9/unknown.jpg\n")
    with pytest.raises(DataError, match="no label in noisy_label_kv.txt"):
        create_dataset("clothing1m", root=root).load()
    (root / "clean_label_kv.txt").write_text("images/0/val_0.jpg notanumber\n")
    with pytest.raises(DataError, match=r"clean_label_kv.txt:1: expected"):
        create_dataset("clothing1m", root=root).split("clean_val_key_list.txt", "clean_label_kv.txt")


def test_balanced_subset_caps_every_class() -> None:
    labels = np.array([0] * 50 + [1] * 5 + [2] * 30)
    idx = balanced_subset(labels, 30, 3, np.random.default_rng(0))
    assert np.bincount(labels[idx]).tolist() == [10, 5, 10] and len(set(idx)) == len(idx)


def test_clothing1m_subset_once_and_per_epoch(tmp_path: Path) -> None:
    root = write_clothing1m(tmp_path / "images", n_noisy=70, n_val=14, n_test=14)
    s = create_dataset("clothing1m", root=root, subset=28, subset_seed=1).load()
    assert np.bincount(s.y_train, minlength=14).tolist() == [2] * 14
    ds = create_dataset("clothing1m", root=root, epoch_samples=14)
    y = ds.load().y_train
    a = ds.epoch_indices(y, 0, np.random.default_rng(0))
    b = ds.epoch_indices(y, 1, np.random.default_rng(1))
    assert np.bincount(y[a], minlength=14).tolist() == [1] * 14 and not np.array_equal(a, b)
    assert create_dataset("clothing1m", root=root).epoch_indices(y, 0, np.random.default_rng(0)) is None
    with pytest.raises(ConfigError, match="either subset"):
        create_dataset("clothing1m", subset=28, epoch_samples=28)


def test_webvision_first_50_classes_and_both_val_sets(tmp_path: Path) -> None:
    root = write_webvision(tmp_path / "wv", per_class=2, classes=52)
    ds = create_dataset("webvision", root=root, image_size=36, crop=32)
    s = ds.load()
    assert len(s.y_train) == 100 and s.y_train.max() == 49  # classes 50, 51 dropped
    assert len(s.y_test) == 50 and Path(s.x_test.paths[0]).parent.name == "val_images_256"
    x_im, y_im = s.extra_test["ilsvrc12"]
    assert len(y_im) == 50 and ds.report_top5


def test_webvision_reads_folder_form_ilsvrc_and_converts_it(tmp_path: Path) -> None:
    root = write_webvision(tmp_path / "wv", per_class=1, classes=3)
    (root / "imagenet" / "imagenet_val.txt").unlink()
    val = root / "imagenet" / "val"
    for i, img in enumerate(sorted(val.glob("*.JPEG"))):
        (val / str(i)).mkdir()
        img.rename(val / str(i) / img.name)
    ds = create_dataset("webvision", root=root, classes=3)
    paths, labels = ds.imagenet_split()
    assert labels.tolist() == [0, 1, 2] and all(Path(p).is_file() for p in paths)
    listing = imagenet_folder_to_list(root)
    assert listing.read_text().splitlines()[1] == "1/ILSVRC2012_val_00000001.JPEG 1"
    assert ds.imagenet_split()[1].tolist() == [0, 1, 2]


def test_webvision_missing_lists_explain_layout(tmp_path: Path) -> None:
    tmp_path.joinpath("wv").mkdir()
    with pytest.raises(DataError, match="(?s)train_filelist_google.txt does not exist.*expected layout"):
        create_dataset("webvision", root=tmp_path / "wv").load()
