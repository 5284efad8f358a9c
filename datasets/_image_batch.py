"""Batched image augmentations and normalisation for uint8 (B, C, H, W) images, on any device.

They run on whole batches where the images live (the GPU for the fast path), drawing their
randomness from the trainer's per-epoch generator, so a run stays reproducible.
"""

from __future__ import annotations

import torch


def _randint(high: int, size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, high, (size,), generator=generator, device=generator.device).to(device)


def random_crop(x: torch.Tensor, size: int, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random ``size`` x ``size`` crops of ``x`` (B, C, H, W) after zero-padding by ``padding``.

    ``random_crop(x, 32, 4, g)`` is torchvision's ``RandomCrop(32, padding=4)`` applied per image.
    """
    b, c, h, w = x.shape
    if padding:
        x = torch.nn.functional.pad(x, (padding,) * 4)
    dy = _randint(h + 2 * padding - size + 1, b, generator, x.device)
    dx = _randint(w + 2 * padding - size + 1, b, generator, x.device)
    rows = (dy[:, None] + torch.arange(size, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(size, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return x[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of ``x`` (B, C, H, W) left-right with probability 1/2."""
    flip = _randint(2, len(x), generator, x.device).bool()
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` window of ``x`` (B, C, H, W); unchanged when already that size."""
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


class Normalizer:
    """uint8 -> float32 in [0, 1], then per-channel (x - mean) / std; constants cached per device."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean, self.std = mean, std
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise the uint8 batch ``x`` (B, C, H, W)."""
        if x.device not in self._cache:
            mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1) * 255.0
            std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1) * 255.0
            self._cache[x.device] = (mean, 1.0 / std)
        mean, inv_std = self._cache[x.device]
        return (x.float() - mean) * inv_std
