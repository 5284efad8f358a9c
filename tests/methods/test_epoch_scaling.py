"""Epoch-based hyperparameters keep their share of the schedule when a profile is shorter."""

from __future__ import annotations

import pytest

from noisybench.config import Setting
from noisybench.registry import METHODS


def cifar10(epochs: int) -> Setting:
    return Setting("cifar10", "sym", 0.5, 10, epochs, profile="fast", paper_epochs=120)


@pytest.mark.parametrize(
    ("method", "key", "paper_epochs", "paper_value"),
    [("alr", "warmup_end", 200, 30), ("dividemix", "warmup", 300, 10), ("dividemix", "rampup", 300, 16),
     ("gce", "start_prune", 120, 40), ("gce", "prune_every", 120, 10)],
)
def test_paper_epoch_counts_scale_with_the_run(method: str, key: str, paper_epochs: int, paper_value: int) -> None:
    cls = METHODS.get(method)
    full = cls.default_hparams(cifar10(paper_epochs))[key]
    assert full.value == paper_value and full.source in {"paper", "paper-default", "suite"}
    short = cls.default_hparams(cifar10(30))[key]
    assert short.value == max(1, round(paper_value * 30 / paper_epochs)) and short.source == "suite"
    assert short.value < 30  # the phase ends inside a 30-epoch fast run
