"""The small CPU networks: ``PairMaxPool1d`` is ``nn.MaxPool1d(2, ceil_mode=True)`` bit for bit (values, gradients)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noisybench.archs import create_model
from noisybench.archs.mlp import PairMaxPool1d


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


@pytest.mark.parametrize("shape", [(16, 8, 40), (5, 3, 11), (4, 2, 1)])
def test_pair_max_pool_matches_max_pool_in_values_and_gradients(shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).relu()  # zeros tie, as after a ReLU
    x[0, 0, : min(4, shape[-1])] = 1.5  # positive ties: the first of a pair wins
    if shape[-1] > 1:
        x[1, 0, 1] = float("nan")  # a NaN wins its pair
        x[1, 1, 0] = float("nan")
    reference, fast = x.clone().requires_grad_(), x.clone().requires_grad_()
    want, got = nn.MaxPool1d(2, ceil_mode=True)(reference), PairMaxPool1d()(fast)
    grad = torch.randn(want.shape, generator=gen)
    want.backward(grad)
    got.backward(grad)
    assert torch.equal(_bits(want), _bits(got))
    assert torch.equal(_bits(reference.grad), _bits(fast.grad))


def test_pair_max_pool_without_gradients_is_the_plain_kernel() -> None:
    x = torch.randn(3, 4, 9)
    with torch.no_grad():
        assert torch.equal(PairMaxPool1d()(x.requires_grad_()), nn.functional.max_pool1d(x, 2, ceil_mode=True))


def test_cnn1d_trains_like_the_max_pool_version() -> None:
    """Two SGD steps of cnn1d with PairMaxPool1d and with nn.MaxPool1d end in identical weights."""
    torch.manual_seed(0)
    fast = create_model("cnn1d", (40,), 10)
    plain = create_model("cnn1d", (40,), 10)
    plain.load_state_dict(fast.state_dict())
    for i, module in enumerate(plain):
        if isinstance(module, PairMaxPool1d):
            plain[i] = nn.MaxPool1d(2, ceil_mode=True)
    x, y = torch.randn(64, 40), torch.randint(0, 10, (64,))
    for net in (fast, plain):
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    for (name, a), b in zip(fast.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name
