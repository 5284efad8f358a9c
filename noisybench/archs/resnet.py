"""ResNets with the CIFAR stem, and torchvision's ResNet-50.

* ``preact_resnet18``: PreAct ResNet-18 (He et al. 2016, identity mappings) with the CIFAR stem,
  the network of DivideMix and ELR+.
* ``resnet18``: ResNet-18 with the CIFAR stem (BasicBlocks), the network of PES on CIFAR-10 and of
  ProMix (``ResNet18`` of their official ``networks/ResNet.py`` / ``model.py``).
* ``resnet34``: ResNet-34 with the CIFAR stem (3x3 stride-1 convolution, no max-pool), the
  network of ELR, GCE and CIFAR-N.
* ``cifar_resnet50``: bottleneck ResNet-50 with the CIFAR stem, APL's CIFAR-100 network (``ResNet50`` of
  the official ``models.py``; not torchvision's), with APL's initialisation as an option.
* ``resnet50``: torchvision's ResNet-50 with a new head; ImageNet weights only from a local file
  (``pretrained = "/path/resnet50.pth"``), never downloaded at run time.

Layer groups (see :mod:`noisybench.archs._common`): the stem, each of the four stages, the classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from noisybench.archs._common import check_choice, initialise
from noisybench.archs._common import image_channels as _channels
from noisybench.errors import ConfigError
from noisybench.registry import register_model


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice, identity (or 1x1 projection) shortcut from the pre-activated input."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(in_ch), nn.BatchNorm2d(out_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        short = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + short


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus shortcut, then ReLU (the original ResNet block)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 conv-BN with 4x expansion plus a conv-BN projection where the shape changes, then ReLU."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(in_ch, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        return torch.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet with the CIFAR stem (conv-BN-ReLU); ``preact`` selects pre-activation blocks,
    ``bottleneck`` bottleneck blocks (4x expansion).

    As in the DivideMix / ELR+ ``PreResNet.py`` network, the pre-activation variant has no final
    BN-ReLU before the pooled linear head.
    """

    def __init__(self, blocks: Sequence[int], num_classes: int, in_ch: int = 3, width: int = 64,
                 preact: bool = False, bottleneck: bool = False) -> None:
        super().__init__()
        block: type[nn.Module] = Bottleneck if bottleneck else PreActBlock if preact else BasicBlock
        expansion = Bottleneck.expansion if bottleneck else 1
        self.stem = nn.Conv2d(in_ch, width, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        layers, ch = [], width
        for i, n in enumerate(blocks):
            out = width * 2**i
            for j in range(n):
                layers.append(block(ch, out, 2 if (j == 0 and i > 0) else 1))
                ch = out * expansion
        self.layers = nn.Sequential(*layers)
        self.stage_sizes = tuple(int(n) for n in blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)  # a module, so deterministic runs can swap it (noisybench.runtime)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        out = self.layers(torch.relu(self.stem_bn(self.stem(x))))
        feats = torch.flatten(self.pool(out), 1)
        logits = self.fc(feats)
        return (logits, feats) if features else logits

    def layer_groups(self) -> list[nn.Module]:
        """The stem (conv, BN), each stage's blocks, the classifier."""
        blocks, groups, start = list(self.layers), [nn.Sequential(self.stem, self.stem_bn)], 0
        for size in self.stage_sizes:
            groups.append(nn.Sequential(*blocks[start : start + size]))
            start += size
        return [*groups, self.fc]


@register_model("preact_resnet18")
def preact_resnet18(in_shape: tuple[int, ...], num_classes: int, width: int = 64) -> nn.Module:
    """PreAct ResNet-18, CIFAR stem (DivideMix, ELR+)."""
    return CifarResNet([2, 2, 2, 2], num_classes, _channels(in_shape), width, preact=True)


@register_model("resnet18")
def resnet18(in_shape: tuple[int, ...], num_classes: int, width: int = 64) -> nn.Module:
    """ResNet-18, CIFAR stem, BasicBlocks (PES on CIFAR-10, ProMix)."""
    return CifarResNet([2, 2, 2, 2], num_classes, _channels(in_shape), width)


@register_model("cifar_resnet50")
def cifar_resnet50(in_shape: tuple[int, ...], num_classes: int, width: int = 64, init: str = "torch") -> nn.Module:
    """Bottleneck ResNet-50 with the CIFAR stem (APL on CIFAR-100).

    ``init = "apl"``: the official code's initialisation (kaiming-uniform fan-in convolutions, xavier-uniform
    linear weight, PyTorch's default biases); ``"torch"`` keeps PyTorch's defaults.
    """
    check_choice("cifar_resnet50", "init", init, ("torch", "apl"))
    net = CifarResNet([3, 4, 6, 3], num_classes, _channels(in_shape), width, bottleneck=True)
    return initialise(net, init)


@register_model("resnet34")
def resnet34(in_shape: tuple[int, ...], num_classes: int, width: int = 64) -> nn.Module:
    """ResNet-34, CIFAR stem: 3x3 stride-1 first convolution, no max-pool (ELR, GCE, CIFAR-N)."""
    return CifarResNet([3, 4, 6, 3], num_classes, _channels(in_shape), width)


@register_model("resnet50")
def resnet50(in_shape: tuple[int, ...], num_classes: int, pretrained: str = "") -> nn.Module:
    """torchvision ResNet-50 with a new ``num_classes`` head.

    ``pretrained``: path to a local ImageNet state dict (e.g. torchvision's
    ``resnet50-0676ba61.pth``), read with ``torch.load(weights_only=True)``; the old 1000-way
    head is dropped. Nothing is downloaded.
    """
    _channels(in_shape)
    net = _feature_resnet50()
    if pretrained:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ConfigError(f"resnet50: pretrained weights file {str(path)!r} does not exist; download "
                              "torchvision's resnet50 ImageNet weights once and give their local path")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise ConfigError(f"resnet50: {path} is not a ResNet-50 state dict "
                              f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


def _feature_resnet50() -> nn.Module:
    """torchvision's ResNet-50 (built as ``resnet50(weights=None)`` builds it) with the layer-group interface."""
    from torchvision.models.resnet import Bottleneck as TvBottleneck
    from torchvision.models.resnet import ResNet

    class FeatureResNet(ResNet):
        def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            feats = torch.flatten(self.avgpool(x), 1)
            logits = self.fc(feats)
            return (logits, feats) if features else logits

        def layer_groups(self) -> list[nn.Module]:
            """The stem (conv, BN), each stage, the classifier."""
            return [nn.Sequential(self.conv1, self.bn1), self.layer1, self.layer2, self.layer3, self.layer4, self.fc]

    return FeatureResNet(TvBottleneck, [3, 4, 6, 3])
