"""Batch augmentations shared by the built-in datasets (vectorised, on any device)."""

from __future__ import annotations

import torch


def random_shift_2d(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of ``x`` (B, [C,] H, W) by up to ``max_shift`` pixels, zero-filled."""
    squeeze = x.dim() == 3
    imgs = x.unsqueeze(1) if squeeze else x
    b, _, h, w = imgs.shape
    padded = torch.nn.functional.pad(imgs, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator, device=generator.device).to(x.device)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator, device=generator.device).to(x.device)
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2s+1, 2s+1, H, W): every shifted view, no copy
    out = windows[torch.arange(b, device=x.device), :, dy, dx]  # one gather of the chosen views: (B, C, H, W)
    return out.squeeze(1) if squeeze else out


def random_shift_1d(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each sequence of ``x`` (B, L) by up to ``max_shift`` steps, zero-filled."""
    b, length = x.shape
    padded = torch.nn.functional.pad(x, (max_shift, max_shift))
    offset = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator, device=generator.device).to(x.device)
    cols = offset[:, None] + torch.arange(length, device=x.device)
    return padded.gather(1, cols)


def gaussian_jitter(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Add N(0, sigma^2) noise."""
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return x + sigma * noise.to(x.device)


def random_cutout_2d(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square of each image of ``x`` (B, H, W), centred at a uniform pixel, clipped."""
    b, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=generator, device=generator.device).to(x.device)
    cx = torch.randint(0, w, (b,), generator=generator, device=generator.device).to(x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - (cy - size // 2).view(-1, 1, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) - (cx - size // 2).view(-1, 1, 1)
    box = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    return x.masked_fill(box, 0.0)


def random_mask_1d(x: torch.Tensor, width: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a window of ``width`` steps of each sequence of ``x`` (B, L), starting at a uniform step, clipped."""
    b, length = x.shape
    start = torch.randint(0, length, (b,), generator=generator, device=generator.device).to(x.device)
    steps = torch.arange(length, device=x.device).view(1, length) - start.view(-1, 1)
    return x.masked_fill((steps >= 0) & (steps < width), 0.0)
