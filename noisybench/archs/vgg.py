"""``vgg19_bn``: VGG-19 with batch norm and a global-pooled head (ANIMAL-10N's 64x64 images)."""

from __future__ import annotations

from torch import nn

from noisybench.archs._common import GroupedSequential
from noisybench.archs._common import image_channels as _channels
from noisybench.registry import register_model

_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


@register_model("vgg19_bn")
def vgg19_bn(in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """VGG-19 with batch norm; global average pool and one linear layer (for 32-64 px inputs).

    Layer groups: the five pooled stages (the global pool joins the last), then the classifier.
    """
    layers: list[nn.Module] = []
    groups: list[int] = []
    ch, size = _channels(in_shape), 0
    for v in _VGG19:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            groups.append(size + 1)
            size = 0
        else:
            layers += [nn.Conv2d(ch, int(v), 3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
            ch, size = int(v), size + 3
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, num_classes)]
    groups[-1] += 2
    return GroupedSequential(*layers, groups=[*groups, 1])
