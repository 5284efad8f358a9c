"""Every registered network's layer groups and features; the networks of the next methods against the official
definitions' parameter counts (noisybench.archs)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from noisybench.archs import create_model
from noisybench.errors import ConfigError
from noisybench.registry import MODELS

SHAPES = {"mlp": (8,), "cnn1d": (40,), "resnet50": (3, 64, 64), "inception_resnet_v2": (3, 80, 80)}
KWARGS = {"coteaching_cnn": {"dropout_in_eval": False}}


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("name", MODELS.list())
def test_layer_groups_hold_every_parameter_once_and_end_with_the_classifier(name: str) -> None:
    if name == "inception_resnet_v2":
        pytest.importorskip("timm")
    shape = SHAPES.get(name, (3, 32, 32))
    torch.manual_seed(0)
    net = create_model(name, shape, 5, **KWARGS.get(name, {})).eval()
    groups = net.layer_groups()
    grouped = [id(p) for g in groups for p in g.parameters()]
    assert sorted(grouped) == sorted(id(p) for p in net.parameters()) and len(set(grouped)) == len(grouped)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        logits, feats = net(x, features=True)
        assert torch.equal(logits, net(x)) and logits.shape == (2, 5) and feats.dim() == 2
        assert torch.equal(groups[-1](feats), logits)  # the last group is the classifier


# Parameter counts of the official definitions, from their layer shapes (conv: in*out*k*k (+out bias); BN and
# Keras BatchNormalization: 2*C trainable; linear: in*out+out):
#  coteaching_cnn: bhanML/Co-teaching model.py CNN, 10 classes: convs 3-128-128-128 (pad 1), 128-256-256-256,
#    256-512-256-128 (pad 0), all with bias, 9 BNs, l_c1 128->10 = 4,434,570.
#  jocor_cnn: hongxin001/JoCoR model/cnn.py CNN, 10 classes: convs 3-64-64-128-128-196-16 with bias, 6 BNs,
#    linear1 256->10 = 518,150.
#  cnn8: APL models.py ToyModel (= SCE's Keras CIFAR-10 model and SCELoss-Reproduce SCEModel), 10 classes:
#    convs 3-64-64 / 64-128-128 / 128-196-196 with bias and BN, fc1 3136->256 with BN1d, fc2 256->10 = 1,639,794.
#  resnet18: PES networks/ResNet.py ResNet18 (BasicBlock [2,2,2,2], CIFAR stem), 10 classes = 11,173,962.
#  cifar_resnet50: APL models.py ResNet50 (Bottleneck [3,4,6,3], CIFAR stem), 100 classes = 23,705,252.
#  resnet44: SCE resnet.py cifar10_resnet(depth=7), 100 classes, trainable = 668,676.
OFFICIAL_COUNTS = {("coteaching_cnn", 10): 4_434_570, ("jocor_cnn", 10): 518_150, ("cnn8", 10): 1_639_794,
                   ("resnet18", 10): 11_173_962, ("cifar_resnet50", 100): 23_705_252, ("resnet44", 100): 668_676}


@pytest.mark.parametrize(("name", "classes"), sorted(OFFICIAL_COUNTS))
def test_parameter_counts_equal_the_official_definitions(name: str, classes: int) -> None:
    net = create_model(name, (3, 32, 32), classes)
    assert _count(net) == OFFICIAL_COUNTS[(name, classes)]
    out = net(torch.randn(4, 3, 32, 32))
    out.sum().backward()
    assert out.shape == (4, classes) and all(p.grad is not None for p in net.parameters())


def test_coteaching_dropout_stays_on_in_eval_unless_turned_off() -> None:
    x = torch.randn(4, 3, 32, 32)
    official = create_model("coteaching_cnn", (3, 32, 32), 10).eval()
    with torch.no_grad():
        assert not torch.equal(official(x), official(x))  # stochastic at evaluation, as the official forward
        plain = create_model("coteaching_cnn", (3, 32, 32), 10, dropout_in_eval=False).eval()
        assert torch.equal(plain(x), plain(x))


def test_cnn8_initialisations_and_batch_norm_conventions() -> None:
    torch.manual_seed(0)
    default, apl = create_model("cnn8", (3, 32, 32), 10), create_model("cnn8", (3, 32, 32), 10, init="apl")
    keras = create_model("cnn8", (3, 32, 32), 10, init="keras", bn="keras")
    with torch.no_grad():
        assert float(default.block1[0].weight.abs().max()) <= 27 ** -0.5  # PyTorch's default bound 1/sqrt(fan-in)
        assert 0.3 < float(apl.block1[0].weight.abs().max()) <= (6 / 27) ** 0.5  # kaiming-uniform, gain sqrt(2)
        assert 0.1 < float(apl.fc2.weight.abs().max()) <= (6 / (256 + 10)) ** 0.5  # xavier-uniform
        std = (2 / 27) ** 0.5 / 0.87962566103423978  # Keras he_normal: truncated at 2 sigma
        assert 0.3 < float(keras.block1[0].weight.abs().max()) <= 2 * std
        assert float(keras.block1[0].bias.abs().max()) == 0
    assert keras.block1[1].momentum == 0.01 and keras.block1[1].eps == 1e-3
    for bad in ({"init": "glorot"}, {"bn": "tf"}):
        with pytest.raises(ConfigError, match="cnn8: (init|bn) must be one of"):
            create_model("cnn8", (3, 32, 32), 10, **bad)


def test_resnet44_strides_with_tensorflows_same_padding() -> None:
    net = create_model("resnet44", (3, 32, 32), 10)
    block = net.stage2[0]
    with torch.no_grad():
        block.conv1.weight.fill_(1.0)
        block.conv1.bias.zero_()
        x = torch.ones(1, 16, 32, 32)
        out = block.conv1(F.pad(x, (0, 1, 0, 1)))  # what the block does before a stride-2 conv
    assert out.shape[-2:] == (16, 16)
    assert float(out[0, 0, 0, 0]) == 16 * 9  # no padding above or left: a full window
    assert float(out[0, 0, -1, -1]) == 16 * 4  # one padded row and column below and right
    y = net.stage2[0](torch.randn(2, 16, 32, 32))
    assert y.shape == (2, 32, 16, 16)
