"""What CIFAR-10N and CIFAR-100N share: CIFAR images with the human labels of Wei et al. (ICLR 2022).

Label files: ``CIFAR-10_human.pt`` / ``CIFAR-100_human.pt`` from
UCSC-REAL/cifar-10-100n ``data/``, in the python-pickle training order. They are read with
``torch.load(weights_only=True)`` and a numpy allow-list (never ``weights_only=False``).
The training labels the suite starts from are the files' ``clean_label`` (checked against the
images' labels); ``human:<set>`` selects a human label set as the noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from noisybench.data import DataSplits
from noisybench.datasets._safe_pickle import load_label_pt, verify_checksum
from noisybench.errors import ConfigError, DataError

#: Shared CIFAR-N recipe: the official ``main.py`` of UCSC-REAL/cifar-10-100n @ 49df7d8.
_SHARED = {"arch": "resnet34", "epochs": 100, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
          "weight_decay": 5e-4, "schedule": "step", "milestones": [60], "gamma": 0.1, "augment": True}


class CifarNMixin:
    """Finds, reads and checks a CIFAR-N label file; serves its sets as ``human:<name>``."""

    label_file: ClassVar[str] = ""
    label_sha256: ClassVar[str] = ""
    #: suite name (the cifar-10-100n ``main.py`` CLI name) -> key in the label file
    label_keys: ClassVar[dict[str, str]] = {}
    root: Path | None
    config: dict[str, Any]
    name: ClassVar[str]

    def check_ready(self) -> None:
        """The CIFAR batches and the label file must both be there."""
        super().check_ready()  # type: ignore[misc]
        self.label_path()

    def input_files(self) -> list[Path]:
        return [*super().input_files(), self.label_path()]  # type: ignore[misc]

    def label_path(self) -> Path:
        """The label file: ``[datasets.<name>] label_file``, else ``<root>/cifar-n/<file>`` or ``<root>/<file>``."""
        if self.config.get("label_file"):
            return Path(str(self.config["label_file"])).expanduser()
        candidates = [self.root / "cifar-n" / self.label_file, self.root / self.label_file] if self.root else []
        for path in candidates:
            if path.is_file():
                return path
        where = " or ".join(str(p) for p in candidates) or f"<root>/cifar-n/{self.label_file}"
        raise DataError(
            f"dataset {self.name!r}: label file not found at {where}. Download {self.label_file} from "
            "https://github.com/UCSC-REAL/cifar-10-100n (folder data/) into <root>/cifar-n/, or set "
            f"[datasets.{self.name}] label_file = \"/path/{self.label_file}\""
        )

    def read_labels(self) -> dict[str, np.ndarray]:
        """All label arrays of the file (checksum verified with a warning on mismatch)."""
        path = self.label_path()
        if not path.is_file():
            raise DataError(f"dataset {self.name!r}: label file {path} does not exist")
        verify_checksum(path, self.label_sha256, "sha256")
        labels = load_label_pt(path)
        needed = {"clean_label", *self.label_keys.values()}
        missing = sorted(needed - set(labels))
        if missing:
            raise DataError(f"{path}: missing label key(s) {', '.join(missing)}; is it {self.label_file}?")
        n = {len(v) for k, v in labels.items() if k in needed}
        if len(n) != 1:
            raise DataError(f"{path}: label arrays have different lengths {sorted(n)}")
        return labels

    def attach_labels(self, splits: DataSplits) -> DataSplits:
        """Check the file against the images and keep its sets for :meth:`human_labels`."""
        labels = self.read_labels()
        clean = labels["clean_label"]
        if len(clean) != len(splits.y_train):
            raise DataError(
                f"{self.label_path()}: {len(clean)} labels but the CIFAR training set has {len(splits.y_train)} "
                "images; use the label file that matches this dataset (CIFAR-10 vs CIFAR-100)"
            )
        disagree = int(np.sum(clean != splits.y_train))
        if disagree:
            raise DataError(
                f"{self.label_path()}: clean_label disagrees with the images' labels on {disagree} of "
                f"{len(clean)} samples; the file must be in torchvision (python-pickle) training order"
            )
        self._human = {name: labels[key] for name, key in self.label_keys.items()}
        return splits

    def human_labels(self, name: str) -> np.ndarray:
        """The human label set ``name`` (see ``human_label_sets``)."""
        if name not in self.label_keys:
            raise ConfigError(f"dataset {self.name!r} has no human label set {name!r}; "
                              f"its sets: {', '.join(self.label_keys)}")
        if not hasattr(self, "_human"):
            raise DataError(f"dataset {self.name!r}: human labels are read by load(); call it first")
        return self._human[name].copy()
