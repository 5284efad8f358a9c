"""Plain CNNs of the small-loss and robust-loss papers, as their official code defines them.

* ``coteaching_cnn``: Co-teaching's 9-layer CNN (Han et al., NeurIPS 2018; ``model.py`` of
  bhanML/Co-teaching): 3x3 convs 128-128-128 / 256-256-256 / 512-256-128 (the last three unpadded),
  each with BN and LeakyReLU(0.01), max-pool and ``dropout2d(0.25)`` after the first two stages, global
  average pool, linear head. The official forward calls the functional dropout without the training
  flag, so it stays on at evaluation: ``dropout_in_eval = true`` keeps that (test predictions are random,
  drawn from the run's seeded global generator); ``false`` is ordinary dropout.
* ``jocor_cnn``: JoCoR's CNN (Wei et al., CVPR 2020; ``model/cnn.py`` of hongxin001/JoCoR): 3x3 convs
  64-64 / 128-128 / 196-16, each with BN and ReLU, a max-pool after every pair, a linear head on the
  flattened 16 x 4 x 4 map. Its dropout rate is defined but never applied; so here.
* ``cnn8``: the 8-layer CNN of APL (Ma et al., ICML 2020; ``ToyModel`` of HanxunH/Active-Passive-Losses)
  and SCE (Wang et al., ICCV 2019; the Keras CIFAR-10 network and the PyTorch reproduction's ``SCEModel``):
  three blocks of two conv(bias)-BN-ReLU (64, 128, 196) and a max-pool, ``fc1`` = linear 256, BN, ReLU on the
  flattened map, ``fc2`` the head. ``init``: ``"torch"`` (PyTorch's defaults), ``"apl"`` (the APL and SCE
  reproduction's kaiming-uniform convolutions and xavier-uniform linear weights) or ``"keras"``
  (``he_normal`` kernels, zero biases); ``bn = "keras"`` takes Keras' batch-norm momentum and epsilon.
  Parameter names follow the official modules: ``fc1.0`` is the first dense layer (Keras regularises
  its kernel and bias), ``fc1`` that layer with its batch norm (the PyTorch reproduction's group).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from noisybench.archs._common import (
    BN_CONVENTIONS,
    INITS,
    GroupedSequential,
    bn1d,
    bn2d,
    check_choice,
    image_channels,
    initialise,
    named,
)
from noisybench.registry import register_model


class Dropout2dAlways(nn.Module):
    """``dropout2d`` that stays on in eval mode unless ``in_eval`` is false (Co-teaching's functional call)."""

    def __init__(self, p: float, in_eval: bool) -> None:
        super().__init__()
        self.p, self.in_eval = p, in_eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout2d(x, self.p, training=self.training or self.in_eval)


def _conv(name: str, in_ch: int, out_ch: int, act: Callable[[], nn.Module],
          padding: int = 1) -> list[tuple[str, nn.Module]]:
    return [(f"c{name}", nn.Conv2d(in_ch, out_ch, 3, 1, padding)), (f"bn{name}", nn.BatchNorm2d(out_ch)),
            (f"act{name}", act())]


@register_model("coteaching_cnn")
def coteaching_cnn(in_shape: tuple[int, ...], num_classes: int, dropout: float = 0.25,
                   dropout_in_eval: bool = True) -> nn.Module:
    """Co-teaching's 9-layer CNN (see the module docstring); layer groups: the three conv stages, the head."""
    ch = image_channels(in_shape)
    def act() -> nn.Module:
        return nn.LeakyReLU(0.01)

    stage1 = [*_conv("1", ch, 128, act), *_conv("2", 128, 128, act), *_conv("3", 128, 128, act),
              ("pool1", nn.MaxPool2d(2, 2)), ("drop1", Dropout2dAlways(dropout, dropout_in_eval))]
    stage2 = [*_conv("4", 128, 256, act), *_conv("5", 256, 256, act), *_conv("6", 256, 256, act),
              ("pool2", nn.MaxPool2d(2, 2)), ("drop2", Dropout2dAlways(dropout, dropout_in_eval))]
    stage3 = [*_conv("7", 256, 512, act, padding=0), *_conv("8", 512, 256, act, padding=0),
              *_conv("9", 256, 128, act, padding=0), ("pool3", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
    head = [("l_c1", nn.Linear(128, num_classes))]
    return GroupedSequential(named(*stage1, *stage2, *stage3, *head),
                             groups=[len(stage1), len(stage2), len(stage3), 1])


@register_model("jocor_cnn")
def jocor_cnn(in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """JoCoR's CNN (see the module docstring); layer groups: the three conv stages, the head."""
    ch = image_channels(in_shape)
    h, w = in_shape[1] // 8, in_shape[2] // 8
    act = nn.ReLU
    stages = [[*_conv("1", ch, 64, act), *_conv("2", 64, 64, act), ("pool1", nn.MaxPool2d(2, 2))],
              [*_conv("3", 64, 128, act), *_conv("4", 128, 128, act), ("pool2", nn.MaxPool2d(2, 2))],
              [*_conv("5", 128, 196, act), *_conv("6", 196, 16, act), ("pool3", nn.MaxPool2d(2, 2)),
               ("flatten", nn.Flatten())]]
    head = [("linear1", nn.Linear(16 * h * w, num_classes))]
    return GroupedSequential(named(*stages[0], *stages[1], *stages[2], *head), groups=[*map(len, stages), 1])


def _block(in_ch: int, out_ch: int, bn: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), bn2d(out_ch, bn), nn.ReLU(),
                         nn.Conv2d(out_ch, out_ch, 3, padding=1), bn2d(out_ch, bn), nn.ReLU(), nn.MaxPool2d(2, 2))


@register_model("cnn8")
def cnn8(in_shape: tuple[int, ...], num_classes: int, init: str = "torch", bn: str = "torch") -> nn.Module:
    """The APL / SCE 8-layer CNN (see the module docstring); layer groups: each block, ``fc1``, ``fc2``."""
    check_choice("cnn8", "init", init, INITS)
    check_choice("cnn8", "bn", bn, tuple(BN_CONVENTIONS))
    ch = image_channels(in_shape)
    flat = 196 * (in_shape[1] // 8) * (in_shape[2] // 8)
    net = GroupedSequential(named(
        ("block1", _block(ch, 64, bn)), ("block2", _block(64, 128, bn)), ("block3", _block(128, 196, bn)),
        ("flatten", nn.Flatten()), ("fc1", nn.Sequential(nn.Linear(flat, 256), bn1d(256, bn), nn.ReLU())),
        ("fc2", nn.Linear(256, num_classes)),
    ), groups=[1, 1, 1, 2, 1])
    return initialise(net, init)
