"""Counting host-device synchronisations of training code, on a GPU or simulated on the CPU.

A step that reads a device value on the host (``item``, ``bool``, ``tolist``, ``.cpu()``, a
boolean-mask index) or copies host data to the device waits for the device; a training step
should do neither. :class:`HostSyncCounter` is a ``TorchFunctionMode`` that sees every torch call
and counts those that synchronise.

On the CPU, where host and device are one, it simulates a GPU: tensors made on the host on
purpose (factories without a ``device`` argument or with ``device="cpu"`` spelled as that string, as
PyTorch's Adam keeps its step counter, ``from_numpy``, ``as_tensor`` of host data, and whatever is
computed from them) count as host tensors; everything else (the prepared data, the networks, tensors
created with ``device=<the run's torch.device>``) as device tensors. Moving a host tensor with
``.to(device)`` then counts as a copy, reading a device tensor as a read, exactly as on a GPU.
"""

from __future__ import annotations

import weakref
from collections import Counter
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

#: Calls that read a device tensor's values on the host.
READS = frozenset({"item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__",
                   "__complex__", "__format__", "nonzero", "masked_select", "unique", "unique_consecutive",
                   "repeat_interleave", "argwhere"})
#: Factories that copy host data (Python numbers, lists, numpy arrays).
FROM_HOST = frozenset({"tensor", "as_tensor", "from_numpy", "asarray"})
#: Calls that move a tensor to another device.
MOVES = frozenset({"to", "cuda", "copy_"})


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


class HostSyncCounter(TorchFunctionMode):
    """Count synchronising torch calls made while the mode is active.

    Parameters
    ----------
    device
        The run's device. ``cpu`` simulates a GPU as described in the module docstring.

    Attributes
    ----------
    counts : Counter of synchronising calls by name (``copy:<name>`` for host-to-device copies).
    """

    def __init__(self, device: torch.device | str) -> None:
        super().__init__()
        self.device = torch.device(device)
        self.simulate = self.device.type == "cpu"
        self.counts: Counter[str] = Counter()
        self._host: dict[int, weakref.ref[torch.Tensor]] = {}  # by id: tensors compare elementwise

    @property
    def total(self) -> int:
        """All synchronising calls counted so far."""
        return sum(self.counts.values())

    def is_host(self, t: torch.Tensor) -> bool:
        """Whether ``t`` lives on the host (simulated on the CPU)."""
        if self.simulate:
            ref = self._host.get(id(t))
            return ref is not None and ref() is t
        return t.device.type == "cpu"

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        inputs = _tensors(list(args) + list(kwargs.values()))
        self._count(name, args, kwargs, inputs)
        out = func(*args, **kwargs)
        if self.simulate and name in MOVES and name != "copy_" and inputs and out is inputs[0]:
            out = out.view_as(out)  # a CPU "move" returns its input: give the device copy its own identity
        if self.simulate:
            self._track(name, args, kwargs, inputs, out)
        return out

    def _count(self, name: str, args: tuple, kwargs: dict, inputs: list[torch.Tensor]) -> None:
        host_inputs = [t for t in inputs if self.is_host(t)]
        device_inputs = [t for t in inputs if not self.is_host(t)]
        if name in READS and device_inputs:
            self.counts[name] += 1
        elif name == "__getitem__" and device_inputs and any(t.dtype == torch.bool for t in _tensors(args[1:])):
            self.counts["bool-mask index"] += 1
        elif name in FROM_HOST:
            if self._target(args, kwargs) is not None and not self._names_host(kwargs):
                self.counts[f"copy:{name}"] += 1
        elif name in MOVES:
            if inputs and self.is_host(inputs[0]) and self._moves_to_device(name, args, kwargs):
                self.counts[f"copy:{name}"] += 1
        elif device_inputs and any(t.dim() > 0 for t in host_inputs):
            self.counts[f"copy:implicit {name}"] += 1  # a host tensor used by a device op

    def _moves_to_device(self, name: str, args: tuple, kwargs: dict) -> bool:
        if name == "cuda":
            return True
        if name == "copy_":
            return not self.is_host(args[0])
        target = self._target(args[1:], kwargs)
        return target is not None and (target.type != "cpu" or self.simulate)

    def _target(self, args: tuple, kwargs: dict) -> torch.device | None:
        """The device a call names (``device=``, a device or string argument, or another tensor's)."""
        for value in [kwargs.get("device"), *args]:
            if isinstance(value, torch.device):
                return value
            if isinstance(value, str):
                try:
                    return torch.device(value)
                except RuntimeError:
                    continue
            if isinstance(value, torch.Tensor):
                return self.device if not self.is_host(value) else torch.device("cpu")
        return None

    def _names_host(self, kwargs: dict) -> bool:
        """A factory given ``device="cpu"`` as a string: the host on purpose (PyTorch's optimisers do so)."""
        return self.simulate and isinstance(kwargs.get("device"), str) and kwargs["device"] == "cpu"

    def _track(self, name: str, args: tuple, kwargs: dict, inputs: list[torch.Tensor], out: Any) -> None:
        """Mark the outputs of a call as host or device tensors (CPU simulation only)."""
        if name in FROM_HOST:
            host = self._target(args, kwargs) is None or self._names_host(kwargs)
        elif name in MOVES and name != "copy_":
            host = bool(inputs) and self.is_host(inputs[0]) and not self._moves_to_device(name, args, kwargs)
        elif name in READS or name == "copy_":
            return
        elif inputs:
            host = all(self.is_host(t) for t in inputs)
        else:  # a factory: on the host unless it names a device
            host = self._target((), kwargs) is None or self._names_host(kwargs)
        for t in _tensors(out):
            if host:
                self._host[id(t)] = weakref.ref(t)
            else:
                self._host.pop(id(t), None)
