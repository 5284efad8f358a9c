"""Human labels (``human``): a label set the dataset ships (CIFAR-N's ``aggre``, ``worst``...) or a label file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from noisybench.errors import ConfigError, suggest
from noisybench.facts import NoiseKind
from noisybench.noise import NoiseContext, NoiseModel, NoiseSpec, read_label_file
from noisybench.registry import register_noise


@register_noise("human")
class Human(NoiseModel):
    """Human labels: a label set the dataset ships (``human:aggre``) or a file (``human:x.npy``)."""

    kind = NoiseKind.HUMAN
    display_name = "Human"
    display_order = 50

    takes_rate = False
    needs_arg = True
    example = "aggre"
    sampler = "human"
    description = "human labels: a dataset's named label set, or a .npy/.txt/.csv label file"

    @classmethod
    def input_files(cls, spec: NoiseSpec) -> list[Path]:
        if Path(spec.arg or "").suffix in {".npy", ".txt", ".csv"}:
            return [Path(spec.arg or "").expanduser()]
        return []

    @classmethod
    def check(cls, spec: NoiseSpec, dataset_cls: Any) -> None:
        if Path(spec.arg or "").suffix in {".npy", ".txt", ".csv"}:
            return
        sets = tuple(getattr(dataset_cls, "human_label_sets", ()))
        if spec.arg not in sets:
            name = getattr(dataset_cls, "name", "this dataset")
            raise ConfigError(
                f"noise 'human:{spec.arg}': dataset {name!r} has no human label set {spec.arg!r}."
                f"{suggest(spec.arg or '', sets)} Its sets: {', '.join(sets) or 'none'}; "
                "or give a label file, e.g. human:labels.npy"
            )

    def corrupt(self, ctx: NoiseContext) -> np.ndarray:
        arg = ctx.spec.arg or ""
        path = Path(arg).expanduser()
        if path.suffix in {".npy", ".txt", ".csv"}:
            return read_label_file(path, len(ctx.labels), ctx.num_classes)
        if ctx.dataset is None:
            raise ConfigError(f"noise 'human:{arg}' needs a dataset with human label sets")
        return np.asarray(ctx.dataset.human_labels(arg), dtype=np.int64)
