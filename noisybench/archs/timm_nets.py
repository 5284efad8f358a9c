"""Architectures a well-kept library already provides, taken from it (optional extra ``timm``).

* ``inception_resnet_v2``: timm's Inception-ResNet-v2 (Szegedy et al. 2017), the network of the
  mini-WebVision protocols of DivideMix and ELR(+), trained from scratch. timm is imported only
  when the network is built (``pip install 'noisybench[timm]'``); weights come only from a local
  file (``pretrained = "/path/weights.pth"`` or ``.safetensors``), never from the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from noisybench.archs._common import image_channels
from noisybench.errors import ConfigError
from noisybench.registry import register_model

EXTRA_HINT = "install the optional extra: pip install 'noisybench[timm]' (or pip install timm)"


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ConfigError(f"architecture 'inception_resnet_v2' needs timm, which is not installed; {EXTRA_HINT}") \
            from None
    return timm


def _load_local(net: nn.Module, path: Path, head: tuple[str, ...]) -> None:
    """Load a local state dict into ``net``, dropping the checkpoint's classifier (``head`` keys)."""
    if not path.is_file():
        raise ConfigError(f"inception_resnet_v2: pretrained weights file {str(path)!r} does not exist; "
                          "give the local path of a timm inception_resnet_v2 state dict (nothing is downloaded)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or {k for k in missing if not k.startswith(head)}:
        raise ConfigError(f"inception_resnet_v2: {path} is not an Inception-ResNet-v2 state dict "
                          f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")


@register_model("inception_resnet_v2")
def inception_resnet_v2(in_shape: tuple[int, ...], num_classes: int, pretrained: str = "",
                        drop_rate: float = 0.0) -> nn.Module:
    """timm's ``inception_resnet_v2`` with a ``num_classes`` head, from scratch or from local weights.

    Parameters
    ----------
    in_shape
        (C, H, W) of the inputs; any H, W >= 75 (global average pooling before the head).
    num_classes
        Output classes.
    pretrained
        Path to a local state dict (``.pth`` or ``.safetensors``); its classifier is dropped.
    drop_rate
        Dropout before the classifier (timm's ``drop_rate``; 0 as in the papers' code).
    """
    timm = _timm()
    net = timm.create_model("inception_resnet_v2", pretrained=False, num_classes=num_classes,
                            in_chans=image_channels(in_shape), drop_rate=drop_rate)
    if pretrained:
        head = tuple(f"{name}." for name in (net.default_cfg.get("classifier") or "classif",))
        _load_local(net, Path(pretrained).expanduser(), head)
    return with_layer_groups(net)


def with_layer_groups(net: nn.Module) -> nn.Module:
    """Give a timm network the layer-group interface (in place; its class becomes a subclass of its own).

    ``forward(x, features=True)`` returns ``(logits, pooled features)`` through timm's ``forward_features`` and
    ``forward_head(pre_logits=True)``; the groups are the top-level modules holding parameters, input to output,
    with timm's classifier last.
    """
    base = type(net)

    class WithGroups(base):  # type: ignore[misc, valid-type]
        def forward(self, x: torch.Tensor, features: bool = False) -> Any:
            feats = self.forward_head(self.forward_features(x), pre_logits=True)
            logits = self.get_classifier()(feats)
            return (logits, feats) if features else logits

        def layer_groups(self) -> list[nn.Module]:
            head = self.get_classifier()
            body = [m for m in self.children() if m is not head and any(True for _ in m.parameters())]
            return [*body, head]

    WithGroups.__name__ = WithGroups.__qualname__ = base.__name__
    net.__class__ = WithGroups
    return net
