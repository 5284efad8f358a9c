"""Helpers for method tests: tiny runs on blobs and a minimal stand-in for the trainer context."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from noisybench.config import Grid, RunConfig
from noisybench.facts import CIFAR_10, CIFAR_100, Setting
from noisybench.method import Batch
from noisybench.plan import expand_grid
from noisybench.registry import DATASETS, NOISES

Z = torch.tensor([[2.0, 0.5, -1.0]])  # the spec's golden logits (methods.md §5.1, §7.2)


def tiny_run(method: str, hparams: dict[str, Any] | None = None, epochs: int = 3, noise: str = "sym:0.4",
             seed: int = 1) -> RunConfig:
    """A resolved run of ``method`` on 400 4-class blobs (8 dims) for ``epochs`` epochs."""
    grid = Grid(
        name="t", datasets=["blobs"], methods=[method], noise=[noise], seeds=[seed],
        train={"epochs": epochs, "device": "cpu"},
        method_params={method: dict(hparams)} if hparams else {},
        dataset_params={"blobs": {"n_samples": 400, "dim": 8, "classes": 4}},
    )
    return expand_grid(grid)[0]


def setting(dataset: str, family: str, rate: float | None, num_classes: int, epochs: int,
            noise_arg: str | None = None, paper_epochs: int | None = None, protocol: str = "paper",
            paper_schedule: bool | None = None, milestones: tuple[int, ...] = ()) -> Setting:
    """The :class:`Setting` the planner builds for ``dataset`` under noise ``family`` (rate or arg).

    ``paper_schedule`` defaults to what the planner finds for the CIFAR recipes the methods publish:
    protocol ``paper`` on CIFAR-10/100 at the paper's length (``paper_epochs``, when given).
    """
    ds = DATASETS.get(dataset)
    noise = NOISES.get(family)
    return Setting(
        dataset=dataset, noise_family=family, noise_rate=rate, num_classes=num_classes, epochs=epochs,
        noise_kind=noise.kind, class_map=noise.class_map, family=ds.family, base_family=ds.base_family,
        protocol=protocol, paper_epochs=paper_epochs, noise_arg=noise_arg, milestones=milestones,
        paper_schedule=(protocol == "paper" and ds.family in (CIFAR_10, CIFAR_100) and paper_epochs in (None, epochs))
        if paper_schedule is None else paper_schedule,
    )


def fake_context(y_noisy: torch.Tensor, num_classes: int, net: torch.nn.Module) -> SimpleNamespace:
    """What ``setup``/``training_step``/``end_epoch`` of the per-sample methods read from a context."""
    return SimpleNamespace(
        nets=[net], num_train=len(y_noisy), num_classes=num_classes, device=torch.device("cpu"), y_noisy=y_noisy,
    )


def batch(x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> Batch:
    return Batch(x=x, raw=x, y=y, index=index)


class FixedLogits(torch.nn.Module):
    """A 'network' returning trainable per-input logits: the input row is an index into a table."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(logits.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x.long().view(-1)]
