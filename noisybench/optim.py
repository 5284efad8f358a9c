"""A recipe's optimiser for one network: parameter groups by weight decay, gradient clipping, rate setting.

``weight_decay_by_module`` gives chosen parameters their own weight decay; every other parameter keeps
``weight_decay``. A key is either a dotted parameter-name prefix (``"fc1"`` selects ``fc1.weight`` and
``fc1.bias``; ``"fc1.weight"`` the weight alone) or ``"kernels"``: every parameter of two or more
dimensions (convolution and linear weights; no biases, no normalisation parameters). Where several keys
select a parameter the longest name prefix wins, and any name prefix wins over ``"kernels"``. Keras'
L2 regulariser ``l2(lam)`` adds ``lam * ||w||^2`` to the loss, whose gradient is ``2 * lam * w``: it is
SGD weight decay ``2 * lam`` (an ``l2(0.01)`` layer takes ``0.02`` here).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from noisybench.config import TrainConfig
from noisybench.errors import ConfigError

#: The ``weight_decay_by_module`` key that selects every weight of two or more dimensions.
KERNELS = "kernels"


def build_optimizer(net: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``net``'s parameters (one group, or one per weight decay)."""
    params: Any = net.parameters() if not train.weight_decay_by_module else decay_groups(net, train)
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay,
                           nesterov=train.nesterov)


def decay_of(name: str, param: torch.Tensor, by_module: dict[str, float], default: float) -> tuple[float, str]:
    """Weight decay of parameter ``name`` and the key that chose it ("" for the default)."""
    prefixes = [k for k in by_module if k != KERNELS and (name == k or name.startswith(k + "."))]
    if prefixes:
        key = max(prefixes, key=len)
        return float(by_module[key]), key
    if KERNELS in by_module and param.dim() >= 2:
        return float(by_module[KERNELS]), KERNELS
    return float(default), ""


def decay_groups(net: nn.Module, train: TrainConfig) -> list[dict[str, Any]]:
    """Parameter groups of ``net``, one per distinct weight decay, in parameter order.

    Raises :class:`ConfigError` when a ``weight_decay_by_module`` key selects no parameter.
    """
    groups: dict[float, list[torch.Tensor]] = {}
    used: set[str] = set()
    for name, param in net.named_parameters():
        decay, key = decay_of(name, param, train.weight_decay_by_module, train.weight_decay)
        used.add(key)
        groups.setdefault(decay, []).append(param)
    unused = sorted(set(train.weight_decay_by_module) - used)
    if unused:
        top = sorted({n.split(".")[0] for n, _ in net.named_parameters()})
        raise ConfigError(f"[train] weight_decay_by_module: {', '.join(repr(k) for k in unused)} selects no parameter "
                          f"of the network; use a parameter-name prefix (its modules: {', '.join(top)}) or "
                          f"{KERNELS!r}")
    return [{"params": params, "weight_decay": decay} for decay, params in groups.items()]


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    """Scale the gradients of ``optimizer``'s parameters so their joint 2-norm is at most ``max_norm``
    (``torch.nn.utils.clip_grad_norm_`` over the parameters it steps; no host synchronisation)."""
    torch.nn.utils.clip_grad_norm_(_params(optimizer.param_groups), max_norm)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group of ``optimizer``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def set_beta1(optimizer: torch.optim.Optimizer, beta1: float) -> None:
    """Write Adam's ``beta_1`` into every parameter group of ``optimizer`` (``beta_2`` unchanged)."""
    for group in optimizer.param_groups:
        group["betas"] = (beta1, group["betas"][1])


def _params(groups: Iterable[dict[str, Any]]) -> list[torch.Tensor]:
    return [p for g in groups for p in g["params"] if p.grad is not None]
