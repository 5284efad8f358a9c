"""Epoch-based hyperparameters keep their paper values on the paper's own schedule and their share of the
schedule otherwise (tagged suite)."""

from __future__ import annotations

import pytest

from noisybench.method import HParam, scale_epochs
from noisybench.registry import METHODS
from tests.methods._helpers import setting


def test_scale_epochs_keeps_paper_values_and_tags_scaled_ones() -> None:
    assert scale_epochs(40, 120, 120, "paper") == HParam(40, "paper")
    assert scale_epochs(40, 120, 60, "paper") == HParam(20, "suite")
    assert scale_epochs(10, 300, 20, "paper-default") == HParam(1, "suite")  # 0.67 rounds to 1
    assert scale_epochs(1, 300, 30, "paper") == HParam(1, "suite")  # never below one epoch


@pytest.mark.parametrize(
    ("method", "key", "paper_epochs", "at_paper", "at_30"),
    # at_30 by hand: 30*30/200 = 4.5 -> 4 (half to even); 10/10 = 1; 1.6 -> 2; 40/4 = 10; 10/4 = 2.5 -> 2
    [("alr", "warmup_end", 200, 30, 4), ("dividemix", "warmup", 300, 10, 1), ("dividemix", "rampup", 300, 16, 2),
     ("gce", "start_prune", 120, 40, 10), ("gce", "prune_every", 120, 10, 2)],
)
def test_paper_epoch_counts_scale_with_the_run(method: str, key: str, paper_epochs: int, at_paper: int,
                                               at_30: int) -> None:
    cls = METHODS.get(method)
    full = cls.default_hparams(setting("cifar10", "sym", 0.5, 10, paper_epochs, paper_epochs=paper_epochs))[key]
    assert full.value == at_paper and full.source in {"paper", "paper-default", "suite"}
    short = cls.default_hparams(setting("cifar10", "sym", 0.5, 10, 30, paper_epochs=paper_epochs,
                                        protocol="shared"))[key]
    assert (short.value, short.source) == (at_30, "suite")


@pytest.mark.parametrize(("method", "key", "value"), [("dividemix", "warmup", 10), ("dividemix", "rampup", 16),
                                                      ("gce", "start_prune", 40)])
def test_shared_protocol_tags_epoch_counts_suite_even_at_the_paper_length(method: str, key: str, value: int) -> None:
    """Under ``shared`` the schedule is not the paper's: the value may coincide, its tag is ``suite``."""
    cls = METHODS.get(method)
    paper_epochs = {"dividemix": 300, "gce": 120}[method]
    hp = cls.default_hparams(setting("cifar10", "sym", 0.5, 10, paper_epochs, paper_epochs=paper_epochs,
                                     protocol="shared", milestones=(40, 80)))[key]
    assert hp == HParam(value, "suite")
