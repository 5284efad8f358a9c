"""``airbench``: a small fast CIFAR net in the style of the airbench speed-run networks (Jordan 2024).

Conv stem, three conv groups with max-pooling, BN and GELU, a global max-pool and a scaled
linear head. The ``fast`` recipes use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from noisybench.archs._common import GroupedSequential
from noisybench.archs._common import image_channels as _channels
from noisybench.registry import register_model


class _Scale(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _conv_bn(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.GELU()]


@register_model("airbench")
def airbench(in_shape: tuple[int, ...], num_classes: int, widths: Sequence[int] = (64, 256, 256),
             stem: int = 24, scale: float = 1 / 9) -> nn.Module:
    """Fast small CIFAR net in the airbench style (the ``fast`` recipes' network).

    A 2x2 conv stem, three groups of (conv, max-pool, BN, GELU, conv, BN, GELU) with ``widths``
    channels, a global max-pool and a bias-free linear head scaled by ``scale``.
    """
    layers: list[nn.Module] = [nn.Conv2d(_channels(in_shape), stem, 2, padding=0, bias=True), nn.GELU()]
    ch = stem
    for w in widths:
        layers += [nn.Conv2d(ch, w, 3, padding=1, bias=False), nn.MaxPool2d(2),
                   nn.BatchNorm2d(w), nn.GELU(), *_conv_bn(w, w)]
        ch = w
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(ch, num_classes, bias=False), _Scale(scale)]
    # layer groups: the stem, each conv group (the global pool and flatten join the last), the scaled head
    groups = [2, *([7] * (len(widths) - 1)), 9, 2] if widths else [2, 2, 2]
    return GroupedSequential(*layers, groups=groups)
