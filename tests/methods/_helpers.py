"""Helpers for method tests: tiny runs on blobs and a minimal stand-in for the trainer context."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from noisybench.config import Grid, RunConfig
from noisybench.facts import Setting
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
            noise_arg: str | None = None, paper_epochs: int | None = None, profile: str = "paper") -> Setting:
    """The :class:`Setting` the planner builds for ``dataset`` under noise ``family`` (rate or arg)."""
    ds = DATASETS.get(dataset)
    return Setting(
        dataset=dataset, noise_family=family, noise_rate=rate, num_classes=num_classes, epochs=epochs,
        noise_kind=NOISES.get(family).kind, family=ds.family, base_family=ds.base_family, profile=profile,
        paper_epochs=paper_epochs, noise_arg=noise_arg,
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
