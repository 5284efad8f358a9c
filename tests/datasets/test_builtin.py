"""Built-in CPU datasets: sizes, splits, determinism, augmentations, declared metadata."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisybench.data import create_dataset, load_dataset
from noisybench.errors import ConfigError
from noisybench.registry import DATASETS, MODELS


def test_digits_matches_the_spec() -> None:
    _, s = load_dataset("digits")
    assert len(s.x_train) + len(s.x_test) == 1797
    assert len(s.x_test) == 360 and tuple(s.x_train.shape[1:]) == (8, 8)
    counts = np.bincount(np.concatenate([s.y_train, s.y_test]))
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert float(s.x_train.max()) <= 1.0 and float(s.x_train.min()) >= 0.0


def test_mnist1d_is_generated_larger_than_default_and_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NOISYBENCH_CACHE", str(tmp_path))
    ds = create_dataset("mnist1d", num_samples=6000)
    s = ds.load()
    assert len(s.x_train) == 4800 and len(s.x_test) == 1200 and tuple(s.x_train.shape[1:]) == (40,)
    cached = list((tmp_path / "mnist1d").glob("*.npz"))
    assert len(cached) == 1
    again = create_dataset("mnist1d", num_samples=6000).load()
    assert torch.equal(s.x_train, again.x_train) and np.array_equal(s.y_test, again.y_test)
    assert create_dataset("mnist1d").config["num_samples"] > 5000


def test_blobs_is_configurable() -> None:
    ds = create_dataset("blobs", n_samples=500, dim=3, classes=7, test_fraction=0.2)
    s = ds.load()
    assert ds.num_classes == 7 and tuple(s.x_train.shape) == (400, 3) and len(s.x_test) == 100
    assert set(np.unique(s.y_train)) == set(range(7))
    with pytest.raises(ConfigError, match="no parameter"):
        create_dataset("blobs", colour=1)
    with pytest.raises(ConfigError, match="classes >= 2"):
        create_dataset("blobs", classes=1)


@pytest.mark.parametrize("name", ["digits", "mnist1d", "blobs"])
def test_declared_metadata_and_augmentation(name: str) -> None:
    cls = DATASETS.get(name)
    assert cls.default_arch in MODELS and "shared" in cls.recipes
    ds, s = load_dataset(name)
    x = s.x_train[:16]
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = ds.augment(x, g1), ds.augment(x, g2)
    assert a.shape == x.shape and torch.equal(a, b)  # seeded
    assert not torch.equal(a, x)  # it does change the input
    assert (a - x).abs().mean() < x.abs().mean()  # but only a little


def test_digit_shift_moves_pixels() -> None:
    from noisybench.datasets._augment import random_shift_2d

    x = torch.zeros(1, 8, 8)
    x[0, 4, 4] = 1.0
    shifted = random_shift_2d(x.repeat(64, 1, 1), 1, torch.Generator().manual_seed(1))
    positions = {tuple(torch.nonzero(img)[0].tolist()) for img in shifted}
    assert positions <= {(r, c) for r in (3, 4, 5) for c in (3, 4, 5)} and len(positions) > 3
