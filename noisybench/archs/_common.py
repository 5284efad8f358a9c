"""Helpers shared by the architecture modules."""

from __future__ import annotations

from noisybench.errors import ConfigError


def image_channels(in_shape: tuple[int, ...]) -> int:
    """Input channels of an image shape (C, H, W); other shapes are refused."""
    if len(in_shape) != 3:
        raise ConfigError(f"image architectures need (C, H, W) inputs, got shape {in_shape}")
    return int(in_shape[0])
