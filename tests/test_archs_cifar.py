"""CIFAR architectures: shapes, sizes, the CIFAR stem, ResNet-50 weights only from a local file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from noisybench.archs import create_model
from noisybench.errors import ConfigError
from noisybench.registry import MODELS


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("name", ["airbench", "preact_resnet18", "resnet34", "vgg19_bn"])
def test_forward_and_backward_on_cifar_shapes(name: str) -> None:
    torch.manual_seed(0)
    net = create_model(name, (3, 32, 32), 7)
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_parameter_counts_match_the_reference_networks() -> None:
    # Counted from the layer definitions of DivideMix's PreResNet.py ResNet18 (stem conv-BN, PreAct blocks with
    # 1x1 conv shortcuts, no final BN) and of the CIFAR ResNet-34 (BasicBlocks, conv-BN shortcuts), 10 classes.
    assert _params(create_model("preact_resnet18", (3, 32, 32), 10)) == 11171274
    assert _params(create_model("resnet34", (3, 32, 32), 10)) == 21282122
    assert _params(create_model("airbench", (3, 32, 32), 10)) < 2_500_000


def test_cifar_stem_keeps_full_resolution() -> None:
    net = create_model("resnet34", (3, 32, 32), 10)
    assert net.stem.kernel_size == (3, 3) and net.stem.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())


def test_resnet50_loads_local_weights_and_replaces_the_head(tmp_path: Path) -> None:
    from torchvision.models import resnet50

    torch.manual_seed(1)
    reference = resnet50(weights=None)
    path = tmp_path / "r50.pth"
    torch.save(reference.state_dict(), path)
    net = create_model("resnet50", (3, 224, 224), 14, pretrained=str(path))
    assert net.fc.out_features == 14
    assert torch.equal(net.conv1.weight, reference.conv1.weight)
    assert torch.equal(net.layer4[2].bn3.running_var, reference.layer4[2].bn3.running_var)
    with pytest.raises(ConfigError, match="does not exist"):
        create_model("resnet50", (3, 224, 224), 14, pretrained=str(tmp_path / "missing.pth"))
    torch.save({"weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="not a ResNet-50 state dict"):
        create_model("resnet50", (3, 224, 224), 14, pretrained=str(tmp_path / "bad.pth"))


def test_registered_and_refuse_flat_inputs() -> None:
    assert {"airbench", "preact_resnet18", "resnet34", "resnet50", "vgg19_bn"} <= set(MODELS.list())
    with pytest.raises(ConfigError, match=r"\(C, H, W\)"):
        create_model("resnet34", (40,), 10)
