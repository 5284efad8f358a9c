"""Small networks for the built-in CPU datasets: ``mlp`` (flat inputs) and ``cnn1d`` (MNIST-1D)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from noisybench.registry import register_model


@register_model("mlp")
def mlp(in_shape: tuple[int, ...], num_classes: int, hidden: Sequence[int] = (256, 256)) -> nn.Module:
    """A ReLU MLP with batch norm on flattened inputs."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(torch.tensor(in_shape).prod())
    for h in hidden:
        layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register_model("cnn1d")
def cnn1d(in_shape: tuple[int, ...], num_classes: int, channels: int = 32) -> nn.Module:
    """A small 1-D convolutional net for MNIST-1D-like sequences of shape (L,) or (C, L)."""
    in_ch = 1 if len(in_shape) == 1 else in_shape[0]
    length = in_shape[-1]
    feat = channels * ((length + 3) // 4)
    return nn.Sequential(
        _Unsqueeze() if len(in_shape) == 1 else nn.Identity(),
        nn.Conv1d(in_ch, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU(inplace=True),
        nn.MaxPool1d(2, ceil_mode=True),
        nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels), nn.ReLU(inplace=True),
        nn.MaxPool1d(2, ceil_mode=True),
        nn.Flatten(), nn.Linear(feat, 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes),
    )


class _Unsqueeze(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)
