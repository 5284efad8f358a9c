"""Named augmentation policies of the CIFAR datasets (a recipe's ``augment``, ``ctx.augment(raw, policy=...)``).

Each draws one random view of a uint8 batch (B, 3, 32, 32) from the run's generator, every image with its own
random choices, on the batch's device (see :mod:`noisybench.datasets._image_ops` for the operations):

* ``weak``: random 32 x 32 crop of the 4-pixel zero-padded image, horizontal flip (the datasets' default).
* ``weak+rot20``: ``weak``, then a rotation by an angle uniform in [-20, 20] degrees (nearest pixel, black
  fill): torchvision's ``RandomRotation(20)`` after crop and flip, APL's and the SCE reproduction's
  CIFAR-100 training transform.
* ``keras-shift`` and ``keras-shift+rot20``: Keras' ``ImageDataGenerator(width_shift_range=0.2,
  height_shift_range=0.2, horizontal_flip=True[, rotation_range=20])`` of SCE's official code (CIFAR-10, and
  CIFAR-100 with the rotation): shifts uniform in +-20 % of the size (fractional pixels, bilinear, edge
  fill), then a flip. Keras subtracts the per-pixel training mean instead of normalising per channel; here
  the dataset's normalisation follows.
* ``autoaugment-cutout16``: SOP+'s strong view (``transform_train_aug`` of shengliu66/SOP): the 25 CIFAR-10
  AutoAugment sub-policies (Cubuk et al. 2019) with the magnitudes of SOP's ``autoaug_paper_cifar10`` (one
  sub-policy per image, each operation applied with its probability, random signs for geometric
  operations), then ``weak``, normalisation, and Cutout of a 16 x 16 square (clipped at the border) set to 0
  on the normalised image, each dataset with its own channel statistics.
* ``autoaugment-cutout16-c10stats``: the same view normalised with CIFAR-10's channel statistics whatever the
  dataset, as SOP's official CIFAR-100 loader does (``data_loader/data_loaders.py:91`` normalises the weak view
  with CIFAR-100's statistics, ``:97-102`` the strong one with CIFAR-10's); on CIFAR-10 it equals
  ``autoaugment-cutout16`` up to float rounding.
* ``randaugment-3-5``: ProMix's strong view (``RandomAugment(3, 5)`` of Justherozen/ProMix): 3 operations
  drawn with replacement from 14, each with a magnitude uniform in its range (the official code ignores the
  ``5``), then a Cutout of a random size up to half the image filled with grey (125, 123, 114), then
  ``weak`` (the official CIFAR-10 transform flips before cropping: the same distribution).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from noisybench.data import AugmentPolicy
from noisybench.datasets import _image_ops as ops
from noisybench.datasets._image_batch import random_crop, random_flip

_CONSTANTS: dict[tuple[str, str], torch.Tensor] = {}


def _constant(name: str, device: torch.device, build: Callable[[], torch.Tensor]) -> torch.Tensor:
    """A policy's constant table on ``device``, built and copied there once (no host copy per batch)."""
    key = (name, str(device))
    if key not in _CONSTANTS:
        _CONSTANTS[key] = build().to(device)
    return _CONSTANTS[key]


def _uniform(n: int, generator: torch.Generator, device: torch.device, low: float = 0.0,
             high: float = 1.0) -> torch.Tensor:
    u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64).to(device)
    return low + (high - low) * u


def _index(n: int, high: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, high, (n,), generator=generator, device=generator.device).to(device)


def weak(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop of the 4-pixel zero-padded image, then a horizontal flip."""
    return random_flip(random_crop(x, x.shape[-1], 4, generator), generator)


def weak_rot20(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``weak``, then a nearest-pixel rotation by U(-20, 20) degrees with black fill."""
    x = weak(x, generator)
    return ops.rotate(x, _uniform(len(x), generator, x.device, -20.0, 20.0))


def keras_shift(x: torch.Tensor, generator: torch.Generator, rotation: float = 0.0) -> torch.Tensor:
    """Keras' shift (and rotation) augmentation, then a flip; float32 pixels on the 0-255 scale."""
    n, h, w = len(x), x.shape[-2], x.shape[-1]
    degrees = _uniform(n, generator, x.device, -rotation, rotation) if rotation else torch.zeros(n, device=x.device)
    rows = _uniform(n, generator, x.device, -0.2, 0.2) * h
    cols = _uniform(n, generator, x.device, -0.2, 0.2) * w
    out = ops.keras_affine(x, degrees, rows, cols)
    flip = _uniform(n, generator, x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


# --------------------------------------------------------------------------------------------- AutoAugment
def _float_parameter(level: int, maxval: float) -> float:
    return float(level) * maxval / 10


def _int_parameter(level: int, maxval: float) -> int:
    return int(_float_parameter(level, maxval))


#: SOP's AutoAugment magnitudes: operation -> (level 0-9 -> value, the operation's (low, high) range, random
#: sign). The official code maps the level to a value, the value to a fraction of the range and back.
_AUTOAUG_MAGNITUDE: dict[str, tuple[Callable[[int], float], tuple[float, float], bool]] = {
    "ShearX": (lambda v: _float_parameter(v, 0.3), (-0.3, 0.3), True),
    "ShearY": (lambda v: _float_parameter(v, 0.3), (-0.3, 0.3), True),
    "TranslateXAbs": (float, (0, 10), True), "TranslateYAbs": (float, (0, 10), True),
    "Rotate": (lambda v: _int_parameter(v, 30), (-30, 30), True),
    "Solarize": (lambda v: 256 - _int_parameter(v, 256), (0, 256), False),
    "Posterize2": (lambda v: 4 - _int_parameter(v, 4), (0, 4), False),
    "Contrast": (lambda v: _float_parameter(v, 1.8) + 0.1, (0.1, 1.9), False),
    "Color": (lambda v: _float_parameter(v, 1.8) + 0.1, (0.1, 1.9), False),
    "Brightness": (lambda v: _float_parameter(v, 1.8) + 0.1, (0.1, 1.9), False),
    "Sharpness": (lambda v: _float_parameter(v, 1.8) + 0.1, (0.1, 1.9), False),
    "AutoContrast": (float, (0, 1), False), "Equalize": (float, (0, 1), False), "Invert": (float, (0, 1), False),
}


def autoaugment_value(op: str, level: int) -> float:
    """The magnitude SOP's AutoAugment applies for ``op`` at ``level`` (before its random sign)."""
    mapping, (low, high), _ = _AUTOAUG_MAGNITUDE[op]
    fraction = float(mapping(level) - low) / (high - low)
    return fraction * (high - low) + low
#: The CIFAR-10 AutoAugment policy: 25 sub-policies of two (operation, probability, level 0-9).
AUTOAUGMENT_CIFAR10 = (
    (("Invert", 0.1, 7), ("Contrast", 0.2, 6)), (("Rotate", 0.7, 2), ("TranslateXAbs", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)), (("ShearY", 0.5, 8), ("TranslateYAbs", 0.7, 9)),
    (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)), (("ShearY", 0.2, 7), ("Posterize2", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)), (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)), (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateXAbs", 0.5, 8)), (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
    (("TranslateYAbs", 0.4, 3), ("Sharpness", 0.2, 6)), (("Brightness", 0.9, 6), ("Color", 0.2, 6)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 3)), (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 8), ("Equalize", 0.6, 4)), (("Color", 0.9, 9), ("Equalize", 0.6, 6)),
    (("AutoContrast", 0.8, 4), ("Solarize", 0.2, 8)), (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)), (("TranslateYAbs", 0.9, 9), ("TranslateYAbs", 0.7, 9)),
    (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)), (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
    (("TranslateYAbs", 0.7, 9), ("AutoContrast", 0.9, 1)),
)

#: Operation name -> function of (uint8 batch, per-image magnitude), and the magnitude that changes nothing.
_OPERATIONS: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], float]] = {
    "ShearX": (ops.shear_x, 0.0), "ShearY": (ops.shear_y, 0.0),
    "TranslateXAbs": (ops.translate_x, 0.0), "TranslateYAbs": (ops.translate_y, 0.0),
    "TranslateX": (ops.translate_x, 0.0), "TranslateY": (ops.translate_y, 0.0),
    "Rotate": (ops.rotate, 0.0), "Solarize": (ops.solarize, 256.0),
    "Posterize2": (ops.posterize, 8.0), "Posterize": (ops.posterize, 8.0),
    "Contrast": (ops.contrast, 1.0), "Color": (ops.color, 1.0), "Brightness": (ops.brightness, 1.0),
    "Sharpness": (ops.sharpness, 1.0),
    "AutoContrast": (lambda x, _: ops.autocontrast(x), 0.0), "Equalize": (lambda x, _: ops.equalize(x), 0.0),
    "Invert": (lambda x, _: ops.invert(x), 0.0), "Identity": (lambda x, _: x, 0.0),
}


def _apply_chosen(x: torch.Tensor, names: tuple[str, ...], chosen: torch.Tensor, apply: torch.Tensor,
                  magnitude: torch.Tensor) -> torch.Tensor:
    """Apply, to every image, operation ``names[chosen[i]]`` with ``magnitude[i]`` where ``apply[i]``.

    Every operation runs on the whole batch (neutral magnitude where not chosen) and is kept where chosen: no
    data-dependent shapes, so no host synchronisation on a GPU.
    """
    for k, name in enumerate(names):
        fn, neutral = _OPERATIONS[name]
        where = apply & (chosen == k)
        out = fn(x, torch.where(where, magnitude, torch.full_like(magnitude, neutral)))
        x = torch.where(where[:, None, None, None], out, x)
    return x


def autoaugment_cifar10(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One CIFAR-10 AutoAugment sub-policy per image (SOP's table and magnitudes)."""
    n, device = len(x), x.device
    policy = _index(n, len(AUTOAUGMENT_CIFAR10), generator, device)
    names = tuple(sorted({op for sub in AUTOAUGMENT_CIFAR10 for op, _, _ in sub}))
    for stage in range(2):
        op_index, prob, value, signed = (t[policy] for t in _autoaugment_tables(stage, names, device))
        apply = _uniform(n, generator, device) <= prob
        negative = signed & (_uniform(n, generator, device) > 0.5)
        x = _apply_chosen(x, names, op_index, apply, torch.where(negative, -value, value))
    return x


def _autoaugment_tables(stage: int, names: tuple[str, ...], device: torch.device) -> list[torch.Tensor]:
    """Per sub-policy: operation index, probability, magnitude, whether its sign is random (stage 0 or 1)."""
    def build() -> torch.Tensor:
        table = [sub[stage] for sub in AUTOAUGMENT_CIFAR10]
        return torch.tensor([[names.index(op), p, autoaugment_value(op, level), _AUTOAUG_MAGNITUDE[op][2]]
                             for op, p, level in table], dtype=torch.float64)

    rows = _constant(f"autoaugment-{stage}", device, build)
    return [rows[:, 0].long(), rows[:, 1], rows[:, 2], rows[:, 3].bool()]


#: CIFAR-10's channel mean and std (0-1 scale), as SOP's loaders and the suite's ``cifar10`` normalise.
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def cifar10_stats(dataset: Any, x: torch.Tensor) -> torch.Tensor:
    """Pixels on the 0-255 scale that ``dataset``'s normalisation (mean m, std s) maps to CIFAR-10's normalisation of
    ``x``: 255 (s (x / 255 - m10) / s10 + m), so the view leaves :meth:`preprocess` normalised with CIFAR-10's
    statistics (SOP+'s CIFAR-100 strong view)."""
    (m10, s10), device = CIFAR10_STATS, x.device
    table = _constant(f"cifar10-stats-{dataset.mean}-{dataset.std}", device, lambda: torch.tensor(
        [[m * 255.0 for m in m10], [s / t for s, t in zip(dataset.std, s10)], [m * 255.0 for m in dataset.mean]]))
    mean10, ratio, mean = (row.view(1, -1, 1, 1) for row in table)
    return (x.float() - mean10) * ratio + mean


def cutout_zero(x: torch.Tensor, generator: torch.Generator, length: int = 16) -> torch.Tensor:
    """SOP's ``CutoutDefault(length)`` on the network input: a ``length`` square centred at a uniform pixel,
    clipped at the border, set to 0."""
    n, h, w = len(x), x.shape[-2], x.shape[-1]
    y, c = _index(n, h, generator, x.device), _index(n, w, generator, x.device)
    half = length // 2
    return ops.fill_box(x, (y - half).clamp(0, h), (c - half).clamp(0, w), (y + half).clamp(0, h),
                        (c + half).clamp(0, w), 0.0)


# --------------------------------------------------------------------------------------------- RandAugment
#: ProMix's ``augment_list``: (operation, low, high); a magnitude is uniform in [low, high].
RANDAUGMENT_OPS = (("AutoContrast", 0, 1), ("Brightness", 0.05, 0.95), ("Color", 0.05, 0.95),
                   ("Contrast", 0.05, 0.95), ("Equalize", 0, 1), ("Identity", 0, 1), ("Posterize", 4, 8),
                   ("Rotate", -30, 30), ("Sharpness", 0.05, 0.95), ("ShearX", -0.3, 0.3), ("ShearY", -0.3, 0.3),
                   ("Solarize", 0, 256), ("TranslateX", -0.3, 0.3), ("TranslateY", -0.3, 0.3))
#: ProMix's Cutout fill colour.
CUTOUT_GREY = (125, 123, 114)


def randaugment_promix(x: torch.Tensor, generator: torch.Generator, n_ops: int = 3) -> torch.Tensor:
    """ProMix's ``RandomAugment(3, 5)``: ``n_ops`` random operations per image, then a grey Cutout."""
    n, device, w = len(x), x.device, x.shape[-1]
    names = tuple(op for op, _, _ in RANDAUGMENT_OPS)
    table = _constant(f"randaugment-{w}", device, lambda: torch.tensor(
        [[lo, hi, w if op in ("TranslateX", "TranslateY") else 1] for op, lo, hi in RANDAUGMENT_OPS],
        dtype=torch.float64))
    low, high, scale = table[:, 0], table[:, 1], table[:, 2]
    for _ in range(n_ops):
        chosen = _index(n, len(names), generator, device)
        value = (low[chosen] + (high[chosen] - low[chosen]) * _uniform(n, generator, device)) * scale[chosen]
        value = torch.where(chosen == names.index("Posterize"), torch.floor(value).clamp(min=1), value)
        x = _apply_chosen(x, names, chosen, torch.ones(n, dtype=torch.bool, device=device), value)
    return cutout_grey(x, generator)


def cutout_grey(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """ProMix's ``Cutout``: side v = U(0, 0.5) x width, corner (int(max(0, U(0, W) - v/2)), same for rows),
    far corner ``min(W, corner + v)``, both ends included (PIL's rectangle), filled with grey."""
    n, device, h, w = len(x), x.device, x.shape[-2], x.shape[-1]
    side = _uniform(n, generator, device) * 0.5 * w
    x0 = torch.trunc((_uniform(n, generator, device, 0, w) - side / 2).clamp(min=0))
    y0 = torch.trunc((_uniform(n, generator, device, 0, h) - side / 2).clamp(min=0))
    x1, y1 = torch.trunc((x0 + side).clamp(max=float(w))), torch.trunc((y0 + side).clamp(max=float(h)))
    grey = _constant("grey", device, lambda: torch.tensor(CUTOUT_GREY, dtype=torch.uint8))
    boxed = ops.fill_box(x, y0.long(), x0.long(), y1.long() + 1, x1.long() + 1, grey)
    return torch.where((side > 0)[:, None, None, None], boxed, x)


def cifar_policies() -> dict[str, AugmentPolicy]:
    """The CIFAR datasets' named policies (``weak`` is their :meth:`augment`)."""
    def stored(fn: Callable[..., torch.Tensor], **kw: Any) -> Callable[[Any, torch.Tensor, torch.Generator],
                                                                        torch.Tensor]:
        return lambda ds, x, g: fn(x, g, **kw)

    return {
        "weak+rot20": AugmentPolicy("crop (padding 4), flip, rotation U(-20, 20) degrees; APL / SCE reproduction, "
                                    "CIFAR-100", "paper", stored(weak_rot20)),
        "keras-shift": AugmentPolicy("Keras: +-20 % shifts (bilinear, edge fill), flip; SCE official, CIFAR-10",
                                     "paper", stored(keras_shift)),
        "keras-shift+rot20": AugmentPolicy("Keras: rotation U(-20, 20), +-20 % shifts, flip; SCE official, "
                                           "CIFAR-100", "paper", stored(keras_shift, rotation=20.0)),
        "autoaugment-cutout16": AugmentPolicy(
            "CIFAR-10 AutoAugment, crop, flip, normalisation, Cutout 16 (to 0); SOP+", "paper",
            lambda ds, x, g: weak(autoaugment_cifar10(x, g), g), lambda x, g: cutout_zero(x, g, 16)),
        "autoaugment-cutout16-c10stats": AugmentPolicy(
            "CIFAR-10 AutoAugment, crop, flip, normalisation with CIFAR-10's statistics, Cutout 16 (to 0); SOP+'s "
            "official CIFAR-100 strong view", "paper",
            lambda ds, x, g: cifar10_stats(ds, weak(autoaugment_cifar10(x, g), g)), lambda x, g: cutout_zero(x, g, 16)),
        "randaugment-3-5": AugmentPolicy("RandomAugment(3, 5) with grey Cutout, then crop and flip; ProMix", "paper",
                                         lambda ds, x, g: weak(randaugment_promix(x, g), g)),
    }

