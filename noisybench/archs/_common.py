"""Helpers shared by the architecture modules: the layer-group interface every registered network offers,
input checks, and the initialisation and batch-norm conventions of the frameworks the papers used.

Every registered network offers (the method contract relies on it):

* ``forward(x, features=False)``: the logits; with ``features=True`` the pair ``(logits, features)``,
  where ``features`` is the classifier's input (the penultimate representation, flattened);
* ``layer_groups()``: ``nn.Module`` groups from input to output that together hold every parameter
  once; the last group is the classifier, which maps ``features`` to the logits. Methods re-initialise
  or freeze groups (PES), or train a second head on ``features`` (ProMix).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from noisybench.errors import ConfigError

#: Initialisation schemes of the ``init`` option: PyTorch's defaults, Keras' ``he_normal`` (kernels; zero
#: biases), and the APL/SCE-reproduction scheme (kaiming-uniform convolutions, xavier-uniform linear weights).
INITS = ("torch", "keras", "apl")
#: Batch-norm conventions of the ``bn`` option: PyTorch's (momentum 0.1, eps 1e-5) and Keras' (0.99, 1e-3).
BN_CONVENTIONS = {"torch": {"momentum": 0.1, "eps": 1e-5}, "keras": {"momentum": 0.01, "eps": 1e-3}}
#: Keras >= 2.3 draws he_normal from a normal truncated at 2 sigma and rescales sigma by this factor, so
#: the truncated draw has variance 2 / fan_in.
_TRUNCATED_STD = 0.87962566103423978


def image_channels(in_shape: tuple[int, ...]) -> int:
    """Input channels of an image shape (C, H, W); other shapes are refused."""
    if len(in_shape) != 3:
        raise ConfigError(f"image architectures need (C, H, W) inputs, got shape {in_shape}")
    return int(in_shape[0])


class GroupedSequential(nn.Sequential):
    """An ``nn.Sequential`` whose layers form consecutive groups (sizes ``groups``; the last is the classifier).

    ``forward(x)`` is ``nn.Sequential``'s, layer by layer; ``forward(x, features=True)`` also returns the
    classifier's input. State-dict keys are ``nn.Sequential``'s (the layer names or indices).
    """

    def __init__(self, *layers: Any, groups: Sequence[int]) -> None:
        super().__init__(*layers)
        if sum(groups) != len(self) or min(groups) < 1:
            raise ValueError(f"group sizes {list(groups)} do not split {len(self)} layers")
        self.group_sizes = tuple(int(g) for g in groups)

    def forward(self, x: torch.Tensor, features: bool = False) -> Any:  # type: ignore[override]
        head = len(self) - self.group_sizes[-1]
        feats = x
        for i, module in enumerate(self):
            if i == head:
                feats = x
            x = module(x)
        return (x, feats) if features else x

    def layer_groups(self) -> list[nn.Module]:
        """The groups, input to output, each an ``nn.Sequential`` of this network's own layers."""
        layers, out, start = list(self), [], 0
        for size in self.group_sizes:
            out.append(nn.Sequential(*layers[start : start + size]))
            start += size
        return out


def named(*pairs: tuple[str, nn.Module]) -> OrderedDict[str, nn.Module]:
    """Named layers for :class:`GroupedSequential` (parameter names such as ``fc1.weight``)."""
    return OrderedDict(pairs)


def check_choice(name: str, key: str, value: str, choices: Sequence[str]) -> None:
    """Refuse an architecture option outside ``choices`` naming the network and the option."""
    if value not in choices:
        raise ConfigError(f"{name}: {key} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


def bn2d(channels: int, convention: str) -> nn.BatchNorm2d:
    """A 2-D batch norm under ``convention`` (:data:`BN_CONVENTIONS`)."""
    return nn.BatchNorm2d(channels, **BN_CONVENTIONS[convention])


def bn1d(channels: int, convention: str) -> nn.BatchNorm1d:
    """A 1-D batch norm under ``convention`` (:data:`BN_CONVENTIONS`)."""
    return nn.BatchNorm1d(channels, **BN_CONVENTIONS[convention])


def initialise(net: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise ``net``'s convolution and linear layers by ``scheme`` (:data:`INITS`; ``torch`` keeps them)."""
    for module in net.modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        if scheme == "apl":
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(module.weight)
        elif scheme == "keras":
            fan_in = nn.init._calculate_fan_in_and_fan_out(module.weight)[0]
            std = math.sqrt(2.0 / fan_in) / _TRUNCATED_STD
            nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net
