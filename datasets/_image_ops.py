"""PIL's and Keras' image operations, re-implemented on uint8 image batches (B, C, H, W) with one magnitude per
image, on any device and without host synchronisation.

The papers' strong views (AutoAugment, RandAugment, rotations, Keras shifts) apply PIL or scipy operations to
one image at a time. These functions apply the same arithmetic to a whole batch, each image with its own
magnitude (a tensor of shape (B,)):

* colour operations follow Pillow's integer and float32 arithmetic (``ImageEnhance`` blends truncate toward
  zero; grayscale is ITU-R 601-2 luma with Pillow's rounding; ``ImageOps`` lookup tables);
* :func:`affine_nearest` is Pillow's ``Image.transform(AFFINE, NEAREST)`` mapping: output pixel centres
  (x + 0.5, y + 0.5) are mapped through the matrix and floored, outside pixels take the fill colour
  (Pillow evaluates it in fixed point, so a pixel exactly on a boundary may land one pixel over);
* :func:`affine_bilinear_edge` is ``scipy.ndimage.affine_transform(order=1, mode="nearest")`` on pixel
  indices, what Keras' ``ImageDataGenerator`` calls.

Randomness never happens here: callers draw the magnitudes from the run's generator.
"""

from __future__ import annotations

import torch


def _per_image(value: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return value.to(dtype).view(-1, 1, 1, 1)


def blend(degenerate: torch.Tensor, image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Pillow's ``Image.blend(degenerate, image, factor)``: ``degenerate + factor * (image - degenerate)`` in
    float32, clipped to [0, 255] and truncated (what every ``ImageEnhance`` class returns)."""
    low = degenerate.to(torch.float32)
    out = low + _per_image(factor) * (image.to(torch.float32) - low)
    return out.clamp_(0, 255).to(torch.uint8)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Pillow's ``convert("L")`` of RGB batches: ``(R*19595 + G*38470 + B*7471 + 0x8000) >> 16``, shape (B, 1, H, W)."""
    if x.shape[1] == 1:
        return x
    r, g, b = (x[:, i : i + 1].to(torch.int32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Brightness``: blend with black."""
    return blend(torch.zeros_like(x), x, factor)


def color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Color``: blend with the grayscale image."""
    return blend(grayscale(x).expand_as(x), x, factor)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Contrast``: blend with the grey level ``int(mean luma + 0.5)`` of each image."""
    mean = grayscale(x).to(torch.float64).mean(dim=(1, 2, 3))
    level = torch.floor(mean + 0.5).to(torch.uint8)
    return blend(level.view(-1, 1, 1, 1).expand_as(x), x, factor)


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Sharpness``: blend with the SMOOTH-filtered image (kernel 1 1 1 / 1 5 1 / 1 1 1, over 13,
    rounded); border pixels stay as they are."""
    kernel = torch.ones(3, 3, dtype=torch.float32, device=x.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13.0).expand(x.shape[1], 1, 3, 3)
    smooth = torch.nn.functional.conv2d(x.to(torch.float32), kernel, groups=x.shape[1])
    smooth = (smooth + 0.5).clamp_(0, 255).to(torch.uint8)
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = smooth
    return blend(degenerate, x, factor)


def _lut(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Apply per-image-and-channel lookup tables ``table`` (B, C, 256) to ``x``."""
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1).to(torch.int64)
    return table.to(torch.uint8).gather(2, flat).reshape(x.shape)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.autocontrast`` (no cutoff): per channel, ``int(i * 255 / (hi - lo) - lo * 255 / (hi - lo))``
    clipped, computed in float64; channels with ``hi <= lo`` unchanged."""
    flat = x.flatten(2)
    lo, hi = flat.amin(dim=2).to(torch.float64), flat.amax(dim=2).to(torch.float64)
    spread = (hi - lo).clamp(min=1.0)
    scale = 255.0 / spread
    offset = -lo * scale
    ix = torch.arange(256, dtype=torch.float64, device=x.device)
    table = torch.trunc(ix * scale[..., None] + offset[..., None]).clamp_(0, 255)
    table = torch.where((hi > lo)[..., None], table, ix)
    return _lut(x, table)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.equalize``: per channel, step = (pixels - count of the last used level) // 255; level i maps
    to ``(step // 2 + pixels below i) // step``; channels with one level or ``step == 0`` unchanged.

    The histogram comes from sorting each channel (no atomics, no data-dependent sizes: deterministic and
    free of host synchronisation on a GPU).
    """
    b, c = x.shape[:2]
    flat = x.reshape(b * c, -1).to(torch.int64).sort(dim=1).values
    levels = torch.arange(257, device=x.device).expand(b * c, 257).contiguous()
    below_all = torch.searchsorted(flat, levels)  # pixels below each level, and the total
    below, hist = below_all[:, :256], below_all[:, 1:] - below_all[:, :256]
    top = flat[:, -1:]  # the last used level
    step = (flat.shape[1] - hist.gather(1, top)[:, 0]) // 255
    table = (step[:, None] // 2 + below) // step.clamp(min=1)[:, None]
    used = (hist > 0).sum(dim=1)
    table = torch.where(((used > 1) & (step > 0))[:, None], table, levels[:, :256]).clamp_(0, 255)
    return _lut(x, table.view(b, c, 256))


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """``ImageOps.posterize``: keep the ``bits`` (0..8, per image) highest bits."""
    mask = (~((1 << (8 - bits.to(torch.int64).clamp(0, 8))) - 1)) & 0xFF
    return x & mask.to(torch.uint8).view(-1, 1, 1, 1)


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """``ImageOps.solarize``: invert every level at or above ``threshold``."""
    return torch.where(x.to(torch.float64) < _per_image(threshold, torch.float64), x, 255 - x)


def invert(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.invert``."""
    return 255 - x


def affine_nearest(x: torch.Tensor, matrix: torch.Tensor, fill: int = 0) -> torch.Tensor:
    """Pillow's ``transform(size, AFFINE, matrix, NEAREST, fillcolor=fill)`` with one matrix (B, 6) per image:
    output pixel (x, y) takes input pixel (floor(a x' + b y' + c), floor(d x' + e y' + f)) with
    (x', y') = (x + 0.5, y + 0.5), or ``fill`` where that falls outside."""
    b, ch, h, w = x.shape
    m = matrix.to(device=x.device, dtype=torch.float64)
    xs = torch.arange(w, dtype=torch.float64, device=x.device) + 0.5
    ys = torch.arange(h, dtype=torch.float64, device=x.device) + 0.5
    src_x = m[:, 0, None, None] * xs[None, None, :] + m[:, 1, None, None] * ys[None, :, None] + m[:, 2, None, None]
    src_y = m[:, 3, None, None] * xs[None, None, :] + m[:, 4, None, None] * ys[None, :, None] + m[:, 5, None, None]
    col, row = torch.floor(src_x).to(torch.int64), torch.floor(src_y).to(torch.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    index = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).view(b, 1, h * w).expand(b, ch, h * w)
    out = x.reshape(b, ch, h * w).gather(2, index).view(b, ch, h, w)
    return out.masked_fill(~inside[:, None], fill)


def shear_x(x: torch.Tensor, v: torch.Tensor, fill: int = 0) -> torch.Tensor:
    """PIL ``ShearX``: matrix (1, v, 0, 0, 1, 0)."""
    one, zero = torch.ones_like(v, dtype=torch.float64), torch.zeros_like(v, dtype=torch.float64)
    return affine_nearest(x, torch.stack([one, v.double(), zero, zero, one, zero], 1), fill)


def shear_y(x: torch.Tensor, v: torch.Tensor, fill: int = 0) -> torch.Tensor:
    """PIL ``ShearY``: matrix (1, 0, 0, v, 1, 0)."""
    one, zero = torch.ones_like(v, dtype=torch.float64), torch.zeros_like(v, dtype=torch.float64)
    return affine_nearest(x, torch.stack([one, zero, zero, v.double(), one, zero], 1), fill)


def translate_x(x: torch.Tensor, pixels: torch.Tensor, fill: int = 0) -> torch.Tensor:
    """PIL ``TranslateX`` by ``pixels``: matrix (1, 0, v, 0, 1, 0) (the content moves left by v)."""
    one, zero = torch.ones_like(pixels, dtype=torch.float64), torch.zeros_like(pixels, dtype=torch.float64)
    return affine_nearest(x, torch.stack([one, zero, pixels.double(), zero, one, zero], 1), fill)


def translate_y(x: torch.Tensor, pixels: torch.Tensor, fill: int = 0) -> torch.Tensor:
    """PIL ``TranslateY`` by ``pixels``: matrix (1, 0, 0, 0, 1, v)."""
    one, zero = torch.ones_like(pixels, dtype=torch.float64), torch.zeros_like(pixels, dtype=torch.float64)
    return affine_nearest(x, torch.stack([one, zero, zero, zero, one, pixels.double()], 1), fill)


def rotate(x: torch.Tensor, degrees: torch.Tensor, fill: int = 0) -> torch.Tensor:
    """PIL ``Image.rotate(degrees)`` (counter-clockwise about the centre (W/2, H/2), NEAREST, same size)."""
    h, w = x.shape[-2:]
    angle = -torch.deg2rad(degrees.to(torch.float64))
    a, b = _round15(torch.cos(angle)), _round15(torch.sin(angle))
    d, e = _round15(-torch.sin(angle)), _round15(torch.cos(angle))
    cx, cy = w / 2.0, h / 2.0
    c = a * -cx + b * -cy + cx
    f = d * -cx + e * -cy + cy
    return affine_nearest(x, torch.stack([a, b, c, d, e, f], 1), fill)


def _round15(v: torch.Tensor) -> torch.Tensor:
    """``round(v, 15)`` as Pillow rounds its rotation matrix (float64)."""
    return torch.round(v * 1e15) / 1e15


def affine_bilinear_edge(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` (B, C, H, W, any dtype) at the float64 pixel-index coordinates ``rows``, ``cols`` (B, H, W)
    bilinearly, clamping coordinates to the image (scipy ``order=1, mode="nearest"``); float32 output."""
    b, ch, h, w = x.shape
    r = rows.clamp(0, h - 1)
    c = cols.clamp(0, w - 1)
    r0, c0 = torch.floor(r).to(torch.int64), torch.floor(c).to(torch.int64)
    r1, c1 = (r0 + 1).clamp(max=h - 1), (c0 + 1).clamp(max=w - 1)
    wr, wc = (r - r0)[:, None], (c - c0)[:, None]
    flat = x.reshape(b, ch, h * w).to(torch.float64)

    def at(rr: torch.Tensor, cc: torch.Tensor) -> torch.Tensor:
        return flat.gather(2, (rr * w + cc).view(b, 1, h * w).expand(b, ch, h * w)).view(b, ch, h, w)

    top = at(r0, c0) * (1 - wc) + at(r0, c1) * wc
    bottom = at(r1, c0) * (1 - wc) + at(r1, c1) * wc
    return (top * (1 - wr) + bottom * wr).to(torch.float32)


def keras_affine(x: torch.Tensor, degrees: torch.Tensor, shift_rows: torch.Tensor,
                 shift_cols: torch.Tensor) -> torch.Tensor:
    """Keras' ``apply_affine_transform(theta, tx, ty)``: rotation after the shift, about the centre
    (H/2 + 0.5, W/2 + 0.5) as Keras places it, sampled bilinearly with edge fill; float32 output."""
    b, _, h, w = x.shape
    theta = torch.deg2rad(degrees.to(torch.float64)).view(-1, 1, 1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    o_r, o_c = h / 2.0 + 0.5, w / 2.0 + 0.5
    rr = torch.arange(h, dtype=torch.float64, device=x.device).view(1, h, 1) - o_r + shift_rows.double().view(-1, 1, 1)
    cc = torch.arange(w, dtype=torch.float64, device=x.device).view(1, 1, w) - o_c + shift_cols.double().view(-1, 1, 1)
    rows = cos * rr - sin * cc + o_r
    cols = sin * rr + cos * cc + o_c
    return affine_bilinear_edge(x, rows.expand(b, h, w), cols.expand(b, h, w))


def fill_box(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, bottom: torch.Tensor, right: torch.Tensor,
             value: torch.Tensor | float) -> torch.Tensor:
    """Set rows ``top <= r < bottom`` and columns ``left <= c < right`` (per image) to ``value`` (one value or
    one per channel)."""
    h, w = x.shape[-2:]
    r = torch.arange(h, device=x.device).view(1, h, 1)
    c = torch.arange(w, device=x.device).view(1, 1, w)
    rows = (r >= top.view(-1, 1, 1)) & (r < bottom.view(-1, 1, 1))
    box = rows & (c >= left.view(-1, 1, 1)) & (c < right.view(-1, 1, 1))
    if not isinstance(value, torch.Tensor):
        return x.masked_fill(box[:, None], value)
    return torch.where(box[:, None], value.to(x.dtype).view(1, -1, 1, 1), x)

