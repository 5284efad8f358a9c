"""timm's Inception-ResNet-v2 (optional extra): built lazily, weights only from local files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from noisybench.archs import create_model
from noisybench.errors import ConfigError


def test_missing_timm_is_a_one_line_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(ConfigError, match=r"needs timm.*noisybench\[timm\]") as info:
        create_model("inception_resnet_v2", (3, 96, 96), 10)
    assert "\n" not in str(info.value)


def test_builds_from_scratch_and_loads_local_weights_without_the_head(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    torch.manual_seed(0)
    net = create_model("inception_resnet_v2", (3, 80, 80), 5)
    assert net(torch.randn(2, 3, 80, 80)).shape == (2, 5)
    donor = create_model("inception_resnet_v2", (3, 80, 80), 1000)
    path = tmp_path / "irv2.pth"
    torch.save(donor.state_dict(), path)
    loaded = create_model("inception_resnet_v2", (3, 80, 80), 7, pretrained=str(path))
    key = "conv2d_1a.conv.weight"
    assert torch.equal(loaded.state_dict()[key], donor.state_dict()[key])
    assert loaded.state_dict()["classif.weight"].shape == (7, 1536)
    with pytest.raises(ConfigError, match="does not exist"):
        create_model("inception_resnet_v2", (3, 80, 80), 7, pretrained=str(tmp_path / "missing.pth"))
