"""CIFAR-10N / CIFAR-100N: safe loading of the .pt label files, checks against the images, human noise."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from noisybench.data import create_dataset
from noisybench.datasets._cifar import CIFAR100_COARSE
from noisybench.datasets._safe_pickle import load_label_pt, verify_checksum
from noisybench.datasets.cifar10n import CIFAR10N
from noisybench.datasets.cifar100n import CIFAR100N
from noisybench.errors import DataError
from noisybench.noise import realize_noise
from tests.datasets.fixtures import cifar10n_labels, write_cifar10, write_cifarn_pt

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar-n"
real_files = pytest.mark.skipif(not (REAL / "CIFAR-10_human.pt").is_file(), reason=f"no CIFAR-N files in {REAL}")


@pytest.fixture
def cifar10n_root(tmp_path: Path) -> Path:
    write_cifar10(tmp_path, per_batch=20, n_test=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = create_dataset("cifar10", root=tmp_path).load().y_train
    write_cifarn_pt(tmp_path / "cifar-n" / "CIFAR-10_human.pt", cifar10n_labels(clean))
    return tmp_path


def _load(name: str, root: Path, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = create_dataset(name, root=root, **params)
        return ds, ds.load()


def test_human_sets_serve_as_noise(cifar10n_root: Path) -> None:
    ds, s = _load("cifar10n", cifar10n_root)
    assert s.clean_known and len(s.y_train) == 100
    worst = realize_noise("human:worst", s.y_train, 10, 0, dataset=ds)
    assert worst.actual_rate == pytest.approx(0.4) and worst.spec == "human:worst"
    assert realize_noise("human:aggre", s.y_train, 10, 3, dataset=ds).actual_rate == pytest.approx(0.1)
    assert set(ds.human_label_sets) >= {"aggre", "random1", "random2", "random3", "worst"}


def test_label_file_elsewhere_via_param(cifar10n_root: Path, tmp_path_factory) -> None:
    other = tmp_path_factory.mktemp("labels") / "mine.pt"
    (cifar10n_root / "cifar-n" / "CIFAR-10_human.pt").rename(other)
    with pytest.raises(DataError, match="UCSC-REAL/cifar-10-100n"):
        _load("cifar10n", cifar10n_root)
    ds, _ = _load("cifar10n", cifar10n_root, label_file=str(other))
    assert len(ds.human_labels("aggre")) == 100


def test_wrong_length_and_wrong_order_are_refused(cifar10n_root: Path) -> None:
    path = cifar10n_root / "cifar-n" / "CIFAR-10_human.pt"
    labels = load_label_pt(path)
    write_cifarn_pt(path, {k: v[:-1] for k, v in labels.items()})
    with pytest.raises(DataError, match="99 labels but the CIFAR training set has 100"):
        _load("cifar10n", cifar10n_root)
    write_cifarn_pt(path, {k: v[::-1].copy() for k, v in labels.items()})
    with pytest.raises(DataError, match="clean_label disagrees"):
        _load("cifar10n", cifar10n_root)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pt_with_code_is_refused_without_running_it(tmp_path: Path, capsys) -> None:
    path = tmp_path / "CIFAR-10_human.pt"
    write_cifarn_pt(path, {"clean_label": _Exploit()})  # type: ignore[dict-item]
    with pytest.raises(DataError, match="not a readable CIFAR-N label file") as refused:
        load_label_pt(path)
    assert "pwned" not in capsys.readouterr().out
    message = str(refused.value)
    assert "the global print" in message and "\n" not in message  # names the refused global, on one line
    assert "weights_only" not in message and "likely succeed" not in message  # never: turn the safety off
    path.write_bytes(pickle.dumps({"clean_label": [1, 2]}))  # a plain pickle, not a torch archive
    with pytest.raises(DataError) as plain:
        load_label_pt(path)
    assert "weights_only" not in str(plain.value) and "\n" not in str(plain.value)


@real_files
def test_real_cifar10n_file_loads_safely_with_published_rates() -> None:
    path = REAL / CIFAR10N.label_file
    assert verify_checksum(path, CIFAR10N.label_sha256, "sha256")
    labels = create_dataset("cifar10n", label_file=str(path)).read_labels()  # the loader's own reader
    clean = labels["clean_label"]
    assert len(clean) == 50000 and clean.dtype == np.int64
    assert clean[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # the CIFAR-10 pickle's first labels
    rates = {name: round(100 * float(np.mean(labels[key] != clean)), 2) for name, key in CIFAR10N.label_keys.items()}
    assert rates == {"aggre": 9.01, "random1": 17.23, "random2": 18.12, "random3": 17.64, "worst": 40.21,
                     "clean": 0.0}


@real_files
def test_real_cifar100n_file_loads_safely_with_published_rates() -> None:
    path = REAL / CIFAR100N.label_file
    assert verify_checksum(path, CIFAR100N.label_sha256, "sha256")
    labels = load_label_pt(path)
    clean, noisy = labels["clean_label"], labels["noisy_label"]
    assert round(100 * float(np.mean(noisy != clean)), 2) == 40.20
    coarse = np.asarray(CIFAR100_COARSE)
    assert np.array_equal(labels["clean_coarse_label"], coarse[clean])  # the spec's super-class constant
    assert round(100 * float(np.mean(labels["noisy_coarse_label"] != labels["clean_coarse_label"])), 2) == 26.40
