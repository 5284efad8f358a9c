"""GCE's L_q against the spec's derived golden values (methods.md §4)."""

from __future__ import annotations

import math

import pytest
import torch

from noisybench.methods.gce import gce_loss


@pytest.mark.parametrize(("p_y", "expected"), [(0.10, 1.143534), (0.50, 0.549183), (0.90, 0.101569),
                                               (0.99, 0.010015)])
def test_golden_values_q07(p_y: float, expected: float) -> None:
    logits = torch.tensor([[math.log(p_y), math.log(1 - p_y)]], dtype=torch.float64)
    assert float(gce_loss(logits, torch.tensor([0]), 0.7)) == pytest.approx(expected, abs=1e-6)


def test_q1_is_mae_and_small_q_tends_to_ce() -> None:
    logits = torch.tensor([[1.0, -0.5, 0.3]], dtype=torch.float64)
    p = torch.softmax(logits, dim=1)[0]
    assert float(gce_loss(logits, torch.tensor([0]), 1.0)) == pytest.approx(1 - float(p[0]), abs=1e-12)
    assert float(gce_loss(logits, torch.tensor([0]), 1e-6)) == pytest.approx(-math.log(float(p[0])), abs=1e-5)
