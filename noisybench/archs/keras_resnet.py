"""``resnet44``: the Keras CIFAR ResNet of SCE's official code (Wang et al., ICCV 2019; ``resnet.py`` of
YisenWang/symmetric_cross_entropy_for_noisy_labels, ``cifar10_resnet(depth=7)``, its CIFAR-100 network).

A 3x3 conv (16 channels, with bias) - BN - ReLU stem; three stages of 7 residual blocks with 16, 32 and 64
channels. A block is [BN - ReLU] - conv - BN - ReLU - conv (every conv with a bias), added to its input;
the very first block skips the leading BN-ReLU, and the first block of stages 2 and 3 strides by 2 and
projects its (un-activated) input with a 1x1 conv (with bias). Then BN - ReLU, global average pooling and
the linear head: 1 + 2 x 21 + 1 = 44 weighted layers. Keras' ``padding="same"`` with stride 2 pads only the
bottom and right, so stride-2 convs here do the same. ``init = "keras"`` (default) draws ``he_normal``
kernels and zero biases, ``bn = "keras"`` (default) takes Keras' batch-norm momentum and epsilon; the
official code puts an L2 penalty of 0.01 on every kernel (``weight_decay_by_module = {kernels = 0.02}``).
Layer groups: the stem, each stage (the final BN joins the last), the classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from noisybench.archs._common import BN_CONVENTIONS, INITS, bn2d, check_choice, image_channels, initialise
from noisybench.registry import register_model


class KerasResidual(nn.Module):
    """One residual block of the Keras CIFAR ResNet (see the module docstring)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, first: bool, bn: str) -> None:
        super().__init__()
        self.stride = stride
        self.pre = None if first else bn2d(in_ch, bn)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, padding=1 if stride == 1 else 0)
        self.bn1 = bn2d(out_ch, bn)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.project = nn.Conv2d(in_ch, out_ch, 1, stride) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.pre is None else torch.relu(self.pre(x))
        if self.stride != 1:  # TensorFlow's "same" padding for an even input and stride 2: bottom and right only
            out = F.pad(out, (0, 1, 0, 1))
        out = self.conv2(torch.relu(self.bn1(self.conv1(out))))
        return out + (x if self.project is None else self.project(x))


class KerasCifarResNet(nn.Module):
    """The Keras CIFAR ResNet with ``depth`` blocks per stage (7: ResNet-44)."""

    def __init__(self, in_ch: int, num_classes: int, depth: int = 7, bn: str = "keras") -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, 16, 3, 1, 1), bn2d(16, bn), nn.ReLU())
        stages, ch = [], 16
        for i, width in enumerate((16, 32, 64)):
            blocks = [KerasResidual(ch, width, 1 if i == 0 else 2, first=i == 0, bn=bn)]
            blocks += [KerasResidual(width, width, 1, first=False, bn=bn) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            ch = width
        self.stage1, self.stage2, self.stage3 = stages
        self.final_bn = bn2d(ch, bn)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        out = self.stage3(self.stage2(self.stage1(self.stem(x))))
        feats = torch.flatten(self.pool(torch.relu(self.final_bn(out))), 1)
        logits = self.fc(feats)
        return (logits, feats) if features else logits

    def layer_groups(self) -> list[nn.Module]:
        """The stem, the three stages (the final BN with the last), the classifier."""
        return [self.stem, self.stage1, self.stage2, nn.Sequential(self.stage3, self.final_bn), self.fc]


@register_model("resnet44")
def resnet44(in_shape: tuple[int, ...], num_classes: int, init: str = "keras", bn: str = "keras") -> nn.Module:
    """SCE's Keras CIFAR ResNet-44 (see the module docstring)."""
    check_choice("resnet44", "init", init, INITS)
    check_choice("resnet44", "bn", bn, tuple(BN_CONVENTIONS))
    return initialise(KerasCifarResNet(image_channels(in_shape), num_classes, 7, bn), init)
