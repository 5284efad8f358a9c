"""``noisybench data check NAME``: verify a dataset on disk and summarise it.

It loads the dataset exactly as a run would (layout, label-file lengths, CIFAR-N clean labels
against the images, CIFAR-100 super-classes), collects checksum warnings, compares counts with
the official release, checks that streamed image files exist, and prints the actual noise rate
of every human label set.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from noisybench.data import create_dataset
from noisybench.data.streaming import ImageList, is_streamed
from noisybench.errors import DataError

#: (train, test) sizes of the official releases (CIFAR: torchvision's ``datasets/cifar.py``; ANIMAL-10N,
#: Clothing1M and WebVision as their papers give them, not yet checked against the released files).
OFFICIAL_SIZES: dict[str, tuple[int, int]] = {
    "cifar10": (50000, 10000), "cifar100": (50000, 10000), "cifar10n": (50000, 10000),
    "cifar100n": (50000, 10000), "animal10n": (50000, 5000), "clothing1m": (1000000, 10526),
    "webvision": (65944, 2500),
}


@dataclass
class CheckReport:
    """What :func:`check_dataset` found. ``ok`` is false when something would break a run."""

    name: str
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    human_rates: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No problems (warnings allowed)."""
        return not self.problems

    def render(self) -> str:
        """The printed summary."""
        out = [f"dataset {self.name}:", *(f"  {ln}" for ln in self.lines)]
        out += [f"  warning: {w}" for w in self.warnings]
        out += [f"  PROBLEM: {p}" for p in self.problems]
        out.append("  status: " + ("OK" if self.ok else f"{len(self.problems)} problem(s)"))
        return "\n".join(out)


def check_dataset(name: str, data_dir: str | Path | None = None, **params: Any) -> CheckReport:
    """Load dataset ``name`` from ``data_dir`` and check it (see the module docstring).

    Raises
    ------
    noisybench.errors.DataError
        When the data cannot be loaded at all (missing files, wrong lengths); the message names
        the expected layout.
    """
    report = CheckReport(name)
    dataset = create_dataset(name, data_dir, **params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            splits = dataset.load()
        except DataError as exc:
            if not hasattr(dataset, "read_labels"):
                raise
            return _labels_only(report, dataset, exc)
    report.warnings += [str(w.message) for w in caught]
    checksum_bad = sum("differs from the official release" in str(w.message) for w in caught)
    if checksum_bad == 0:
        report.lines.append("checksums: match the official release (or none are known)")
    n_train, n_test = len(splits.y_train), len(splits.y_test)
    report.lines.append(f"train: {n_train} samples, test: {n_test} samples, {dataset.num_classes} classes")
    counts = np.bincount(splits.y_train, minlength=dataset.num_classes)
    report.lines.append(f"train labels per class: min {counts.min()}, max {counts.max()}")
    for extra, (_x, y) in splits.extra_test.items():
        report.lines.append(f"extra test set {extra}: {len(y)} samples")
    official = OFFICIAL_SIZES.get(name)
    if official and official != (n_train, n_test):
        report.warnings.append(f"sizes differ from the official release {official} (a subset or a fixture?)")
    _check_files(report, splits)
    _human_rates(report, dataset, splits.y_train)
    return report


def _check_files(report: CheckReport, splits: Any) -> None:
    sets = {"train": splits.x_train, "test": splits.x_test, **{k: v[0] for k, v in splits.extra_test.items()}}
    for label, x in sets.items():
        if not is_streamed(x):
            continue
        assert isinstance(x, ImageList)
        missing = [p for p in x.paths if not Path(p).is_file()]
        if missing:
            report.problems.append(f"{label}: {len(missing)} of {len(x)} image files are missing (first: {missing[0]})")
        else:
            report.lines.append(f"{label}: all {len(x)} image files present")


def _human_rates(report: CheckReport, dataset: Any, clean: np.ndarray) -> None:
    for set_name in dataset.human_label_sets:
        labels = np.asarray(dataset.human_labels(set_name))
        rate = float(np.mean(labels != clean))
        report.human_rates[set_name] = rate
        report.lines.append(f"human:{set_name}: actual noise rate {100 * rate:.2f} % vs clean_label")
    if dataset.human_label_sets:
        report.lines.append("clean_label agrees with the images' labels: yes")


def _labels_only(report: CheckReport, dataset: Any, error: DataError) -> CheckReport:
    """CIFAR-N without usable images: check the label file alone and report the image problem."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            labels = dataset.read_labels()
        except DataError:
            raise error from None
    report.warnings += [str(w.message) for w in caught]
    if not caught:
        report.lines.append("label file checksum: matches the official release")
    clean = labels["clean_label"]
    report.lines.append(f"label file {dataset.label_path()}: {len(clean)} samples")
    for set_name, key in dataset.label_keys.items():
        rate = float(np.mean(labels[key] != clean))
        report.human_rates[set_name] = rate
        report.lines.append(f"human:{set_name}: actual noise rate {100 * rate:.2f} % vs clean_label")
    report.problems.append(str(error).splitlines()[0])
    return report
