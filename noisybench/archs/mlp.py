"""Small networks for the built-in CPU datasets: ``mlp`` (flat inputs) and ``cnn1d`` (MNIST-1D)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from noisybench.archs._common import GroupedSequential
from noisybench.registry import register_model


@register_model("mlp")
def mlp(in_shape: tuple[int, ...], num_classes: int, hidden: Sequence[int] = (256, 256)) -> nn.Module:
    """A ReLU MLP with batch norm on flattened inputs; one layer group per hidden layer, then the classifier."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(torch.tensor(in_shape).prod())
    for h in hidden:
        layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    groups = [1 + 3, *([3] * (len(hidden) - 1)), 1] if hidden else [1, 1]
    return GroupedSequential(*layers, groups=groups)


@register_model("cnn1d")
def cnn1d(in_shape: tuple[int, ...], num_classes: int, channels: int = 32) -> nn.Module:
    """A small 1-D convolutional net for MNIST-1D-like sequences of shape (L,) or (C, L).

    Layer groups: each convolution block, the 128-unit hidden layer, the classifier.
    """
    in_ch = 1 if len(in_shape) == 1 else in_shape[0]
    length = in_shape[-1]
    feat = channels * ((length + 3) // 4)
    return GroupedSequential(
        _Unsqueeze() if len(in_shape) == 1 else nn.Identity(),
        nn.Conv1d(in_ch, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU(inplace=True),
        PairMaxPool1d(),
        nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels), nn.ReLU(inplace=True),
        PairMaxPool1d(),
        nn.Flatten(), nn.Linear(feat, 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes),
        groups=[5, 4, 3, 1],
    )


class PairMaxPool1d(nn.Module):
    """``nn.MaxPool1d(2, ceil_mode=True)`` with the same values and gradients, bit for bit, at half the cost.

    PyTorch's CPU kernel that records the argmax for the backward pass is several times slower than the
    one that does not; this module takes the fast kernel's values and builds the argmax of each pair itself
    with the kernel's rule (the first of equal values; a NaN wins), then reuses PyTorch's backward kernel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or not (x.requires_grad and torch.is_grad_enabled()):
            return F.max_pool1d(x, 2, ceil_mode=True)
        return _PairMax.apply(x)


class _PairMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool1d(x, 2, ceil_mode=True)  # no grad here: the fast kernel
        first, second = x[..., 0::2], x[..., 1::2]
        pairs = second.shape[-1]
        later = torch.gt(second, first[..., :pairs])
        later |= second.isnan()
        starts = torch.arange(0, x.shape[-1], 2, device=x.device)
        index = later.to(torch.int64).add_(starts[:pairs])
        if pairs < out.shape[-1]:  # odd length: the last window holds one element
            index = torch.cat([index, starts[pairs:].expand(*out.shape[:-1], 1)], dim=-1)
        ctx.save_for_backward(x, index)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, index = ctx.saved_tensors
        grad_in = torch.ops.aten.max_pool2d_with_indices_backward(
            grad.unsqueeze(2), x.unsqueeze(2), [1, 2], [1, 2], [0, 0], [1, 1], True, index.unsqueeze(2))
        return grad_in.squeeze(2)


class _Unsqueeze(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)
