"""``noisybench data check``: summary, human-label rates, checksum warnings, missing files, errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from noisybench.cli import main
from noisybench.data import create_dataset
from noisybench.data.check import check_dataset
from tests.datasets.fixtures import cifar10n_labels, write_cifar10, write_cifarn_pt, write_clothing1m


def test_cifar10n_check_reports_rates_and_checksums(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_cifar10(tmp_path, per_batch=20, n_test=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = create_dataset("cifar10", root=tmp_path).load().y_train
    write_cifarn_pt(tmp_path / "cifar-n" / "CIFAR-10_human.pt", cifar10n_labels(clean))
    assert main(["data", "check", "cifar10n", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train: 100 samples, test: 10 samples, 10 classes" in out
    assert "human:worst: actual noise rate 40.00 %" in out and "human:aggre: actual noise rate 10.00 %" in out
    assert "clean_label agrees with the images' labels: yes" in out
    assert out.count("differs from the official release") == 7  # 6 batches + the label file
    assert "status: OK" in out
    report = check_dataset("cifar10n", tmp_path)
    assert report.ok and report.human_rates["random1"] == pytest.approx(0.2)


def test_missing_streamed_images_are_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_clothing1m(tmp_path / "images", n_noisy=14, n_val=14, n_test=14)
    assert main(["data", "check", "clothing1m", "--data-dir", str(root)]) == 0
    assert "train: all 14 image files present" in capsys.readouterr().out
    (root / "3" / "test_3.jpg").unlink()
    assert main(["data", "check", "clothing1m", "--data-dir", str(root)]) == 1
    assert "PROBLEM: test: 1 of 14 image files are missing" in capsys.readouterr().out


def test_unloadable_data_exits_2_with_the_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", "cifar100", "--data-dir", str(tmp_path)]) == 2
    assert "cifar-100-python" in capsys.readouterr().err
    assert main(["data", "check", "cifar10", "--param", "nonsense"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar-n"


@pytest.mark.skipif(not (REAL / "CIFAR-10_human.pt").is_file(), reason=f"no CIFAR-N files in {REAL}")
def test_real_label_file_without_images_reports_rates(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["data", "check", "cifar10n", "--data-dir", str(tmp_path),
                 "--param", f"label_file={REAL / 'CIFAR-10_human.pt'}"])
    out = capsys.readouterr().out
    assert code == 1 and "PROBLEM: dataset 'cifar10n':" in out and "lacks data_batch_1" in out
    assert "label file checksum: matches the official release" in out
    assert "human:worst: actual noise rate 40.21 %" in out and "human:aggre: actual noise rate 9.01 %" in out


def test_clean_labels_disagreeing_with_images_are_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_cifar10(tmp_path, per_batch=20, n_test=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = create_dataset("cifar10", root=tmp_path).load().y_train
    write_cifarn_pt(tmp_path / "cifar-n" / "CIFAR-10_human.pt", cifar10n_labels((clean + 1) % 10))
    assert main(["data", "check", "cifar10n", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM:" in out and "clean_label disagrees with the images' labels on 100 of 100" in out
