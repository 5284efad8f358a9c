"""Architectures, one module per family: ``mlp`` (mlp, cnn1d), ``resnet`` (preact_resnet18,
resnet34, resnet50), ``airbench``, ``vgg`` (vgg19_bn).

Each builder is registered with ``@register_model`` and called as
``create_model(name, in_shape=..., num_classes=..., **kwargs)``; modules of this package are
discovered, so a new file registers its models without editing a list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from noisybench.registry import MODELS


def create_model(name: str, in_shape: Sequence[int], num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the registered architecture ``name`` for inputs of shape ``in_shape``."""
    return MODELS.get(name)(in_shape=tuple(in_shape), num_classes=num_classes, **kwargs)
