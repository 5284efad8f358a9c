"""Preparing one run's data: load, apply the noise, carve the noisy validation split.

The result is identical for every method given (dataset, noise, seed): the noise comes from the
stream named by (dataset, spec, seed) and the split from (dataset, spec, seed) too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from noisybench.data import Dataset, load_dataset, split_problem, stratified_holdout
from noisybench.data.streaming import is_streamed
from noisybench.errors import ConfigError
from noisybench.noise import NoiseRealization, parse_noise, realize_noise
from noisybench.seeds import stream


@dataclass
class PreparedData:
    """The tensors of one run. ``y_train_clean`` is for the trainer's diagnostics only."""

    x_train: Any
    y_train: torch.Tensor
    y_train_clean: torch.Tensor | None
    x_val: Any
    y_val: torch.Tensor
    x_test: Any
    y_test: torch.Tensor
    num_classes: int
    noise: NoiseRealization
    train_index: np.ndarray
    val_index: np.ndarray
    extra_test: dict[str, tuple[Any, torch.Tensor]] = field(default_factory=dict)


def prepare_data(
    dataset_name: str, params: dict[str, Any], noise: str, seed: int, val_fraction: float | None = None,
    data_root: str | None = None, device: torch.device | str = "cpu",
) -> tuple[Dataset, PreparedData]:
    """Load ``dataset_name``, apply ``noise`` with ``seed`` and carve the noisy validation split.

    ``val_fraction`` None uses the dataset's own. Tensors move to ``device`` once; streamed
    image lists stay on disk.
    """
    dataset, splits = load_dataset(dataset_name, data_root, **params)
    dataset_id = f"{dataset_name}{sorted(params.items())}"
    realized = realize_noise(
        parse_noise(noise), splits.y_train, dataset.num_classes, seed,
        dataset=dataset, dataset_id=dataset_id, features=lambda: dataset.noise_features(splits),
    )
    fraction = dataset.val_fraction if val_fraction is None else val_fraction
    problem = split_problem(np.bincount(realized.labels, minlength=dataset.num_classes).tolist(), fraction)
    if problem:  # refused before any training, in one line
        raise ConfigError(f"{dataset_name}: {problem}")
    rng = np.random.default_rng(stream("split", dataset_id, noise, seed))
    train_idx, val_idx = stratified_holdout(realized.labels, fraction, rng)
    clean = torch.as_tensor(splits.y_train[train_idx]) if splits.clean_known else None

    def to(t: Any) -> Any:
        return t if is_streamed(t) else torch.as_tensor(t).to(device)

    data = PreparedData(
        x_train=to(splits.x_train[train_idx]), y_train=to(realized.labels[train_idx]),
        y_train_clean=clean.to(device) if clean is not None else None,
        x_val=to(splits.x_train[val_idx]), y_val=to(realized.labels[val_idx]),
        x_test=to(splits.x_test), y_test=to(splits.y_test), num_classes=dataset.num_classes,
        noise=realized, train_index=train_idx, val_index=val_idx,
        extra_test={k: (to(x), to(y)) for k, (x, y) in splits.extra_test.items()},
    )
    return dataset, data
