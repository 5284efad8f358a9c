"""CIFAR-10/100 loaders on fixtures in the real python-pickle layout; safe unpickling; augmentation; maps."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from noisybench.data import create_dataset
from noisybench.datasets._cifar import CIFAR100_BLOCK5_MAP, CIFAR100_COARSE, superclass_map
from noisybench.datasets._safe_pickle import load_cifar_pickle
from noisybench.errors import ConfigError, DataError
from noisybench.noise import parse_noise, realize_noise
from noisybench.registry import NOISES
from tests.datasets.fixtures import write_cifar10, write_cifar100


def _load(name: str, root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = create_dataset(name, root=root)
        return ds, ds.load()


def test_cifar10_reads_batches_in_order(tmp_path) -> None:
    folder = write_cifar10(tmp_path, per_batch=20, n_test=30)
    ds, s = _load("cifar10", tmp_path)
    assert s.x_train.shape == (100, 3, 32, 32) and s.x_train.dtype == torch.uint8
    assert s.x_test.shape == (30, 3, 32, 32) and s.clean_known
    first = load_cifar_pickle(folder / "data_batch_1")
    last = load_cifar_pickle(folder / "data_batch_5")
    assert s.y_train[:20].tolist() == first["labels"] and s.y_train[80:].tolist() == last["labels"]
    # Row layout: 1024 R, 1024 G, 1024 B values, each plane row-major.
    assert torch.equal(s.x_train[0, 1].flatten(), torch.from_numpy(first["data"][0, 1024:2048]))
    assert ds.class_names()[9] == "truck"


def test_root_may_be_the_batches_folder_itself(tmp_path) -> None:
    folder = write_cifar10(tmp_path, per_batch=5, n_test=5)
    _, s = _load("cifar10", folder)
    assert len(s.y_train) == 25


def test_checksum_mismatch_warns_not_fails(tmp_path) -> None:
    write_cifar10(tmp_path, per_batch=5, n_test=5)
    with pytest.warns(UserWarning, match="differs from the official release"):
        create_dataset("cifar10", root=tmp_path).load()


def test_missing_files_name_the_layout(tmp_path) -> None:
    folder = write_cifar10(tmp_path, per_batch=5, n_test=5)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"(?s)lacks data_batch_3.*cifar-10-python\.tar\.gz"):
        _load("cifar10", tmp_path)
    with pytest.raises(DataError, match="needs a data root"):
        create_dataset("cifar10").load()


def test_label_length_mismatch_is_refused(tmp_path) -> None:
    folder = write_cifar10(tmp_path, per_batch=5, n_test=5)
    batch = load_cifar_pickle(folder / "data_batch_2")
    batch["labels"] = batch["labels"][:-1]
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="4 labels for 5 images"):
        _load("cifar10", tmp_path)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unpickler_refuses_code_execution(tmp_path, capsys) -> None:
    folder = write_cifar10(tmp_path, per_batch=5, n_test=5)
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": _Exploit(), "labels": [0]}, protocol=2))
    with pytest.raises(DataError, match=r"refusing to load global .*print"):
        _load("cifar10", tmp_path)
    assert "pwned" not in capsys.readouterr().out


def test_cifar100_fine_labels_and_superclass_check(tmp_path) -> None:
    folder = write_cifar100(tmp_path, n_train=200, n_test=50)
    _, s = _load("cifar100", tmp_path)
    assert s.x_train.shape == (200, 3, 32, 32) and s.y_train.max() < 100
    batch = load_cifar_pickle(folder / "train")
    batch["coarse_labels"] = [(c + 1) % 20 for c in batch["coarse_labels"]]
    (folder / "train").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="super-classes"):
        _load("cifar100", tmp_path)


def test_block5_and_superclass_maps_differ_as_specified() -> None:
    assert CIFAR100_BLOCK5_MAP[0] == 1 and CIFAR100_BLOCK5_MAP[4] == 0 and CIFAR100_BLOCK5_MAP[99] == 95
    sup = superclass_map(CIFAR100_COARSE)
    assert sorted(sup) == list(range(100)) and sorted(sup.values()) == list(range(100))
    assert all(CIFAR100_COARSE[k] == CIFAR100_COARSE[v] and k != v for k, v in sup.items())
    # Blocks of 5 are not super-classes: distinct coarse classes per block (methods.md §8.3).
    per_block = [len({CIFAR100_COARSE[i] for i in range(5 * b, 5 * b + 5)}) for b in range(20)]
    assert per_block == [5, 4, 5, 4, 5, 4, 5, 5, 4, 5, 4, 4, 4, 5, 5, 4, 5, 3, 5, 5]
    assert sup[0] == 51  # coarse 4 (fruit and vegetables) holds 0, 51, 53, 57, 83


def test_cifar100_asym_variants_are_distinct_noises() -> None:
    ds_cls = type(create_dataset("cifar100"))
    labels = np.repeat(np.arange(100), 10)
    ds = create_dataset("cifar100")
    block = realize_noise("asym:0.4", labels, 100, 0, dataset=ds, dataset_id="c100")
    sup = realize_noise("asym-superclass:0.4", labels, 100, 0, dataset=ds, dataset_id="c100")
    assert block.spec == "asym:0.4" and sup.spec == "asym-superclass:0.4"
    flipped = block.labels != labels
    assert flipped.sum() == 400 and np.all(block.labels[flipped] == [CIFAR100_BLOCK5_MAP[y] for y in labels[flipped]])
    sflip = sup.labels != labels
    coarse = np.asarray(CIFAR100_COARSE)
    assert sflip.sum() == 400 and np.all(coarse[sup.labels] == coarse[labels])
    spec = parse_noise("asym-superclass:0.2")
    NOISES.get("asym-superclass").check(spec, ds_cls)
    with pytest.raises(ConfigError, match="asym-superclass"):
        NOISES.get("asym-superclass").check(spec, type(create_dataset("cifar10")))


def test_augment_is_crop_with_padding_and_flip() -> None:
    ds = create_dataset("cifar10")
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(2, 3, 32, 32)
    x = x.repeat(64, 1, 1, 1)
    out = ds.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    again = ds.augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    # Each output is a shifted (zero-filled) and possibly mirrored copy of its input.
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(len(x)):
        views = [padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[i], v) or torch.equal(out[i], v.flip(2)) for v in views)
    assert not torch.equal(out, x)


def test_preprocess_normalises_with_dataset_statistics() -> None:
    ds = create_dataset("cifar10")
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = ds.preprocess(x)
    expected = (1 - torch.tensor(ds.mean)) / torch.tensor(ds.std)
    assert out.dtype == torch.float32 and torch.allclose(out[0, :, 0, 0], expected, atol=1e-5)


def test_download_only_when_asked(tmp_path, monkeypatch) -> None:
    import torchvision

    calls = []

    def fake_cifar10(root, train, download):
        calls.append((root, download))
        write_cifar10(tmp_path, per_batch=4, n_test=4)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    with pytest.raises(DataError, match="lacks"):
        _load("cifar10", tmp_path)
    assert calls == []
    ds = create_dataset("cifar10", root=tmp_path, download=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(ds.load().y_train) == 20
    assert calls == [(str(tmp_path), True)]
