"""Where and how a run computes: device, precision, determinism and the fast-path options.

:func:`resolve_runtime` turns a recipe's ``[train]`` settings into a :class:`Runtime` for the
machine at hand; :meth:`Runtime.applied` sets torch's global switches for the duration of a run
and restores them; :func:`accelerate` prepares a network (channels_last, autocast, compile,
deterministic pooling). The resolved values are recorded with every run (:meth:`Runtime.record`).

Precision (``[train] amp``):

* ``"auto"`` (the default): bf16 autocast on CUDA devices of compute capability >= 8.0 (Ampere
  and later, which have bf16 tensor cores); fp32 on older GPUs (Volta/Turing have no bf16
  convolutions, and fp16 would need a loss scaler whose overflow checks synchronise with the
  host every step) and on the CPU;
* ``true``: bf16 autocast on any device, the CPU included (how CI exercises the GPU's code path);
* ``false``: fp32.

Only the networks' forward passes run under autocast, inside a ``with`` block that is left even
when the forward raises; their outputs come back as float32 (every tensor of a tuple, list or dict
too: extra outputs of ``forward(x, features=True)`` or of a method's extended network), so losses
and per-sample state stay in float32.

Determinism (``[train] deterministic``, default ``true``): ``torch.use_deterministic_algorithms``,
deterministic cuDNN, ``CUBLAS_WORKSPACE_CONFIG`` and, on CUDA, global pooling layers replaced by
reductions with deterministic backward passes. With ``false``, ``cudnn.benchmark`` picks the
fastest convolution kernels (the batch shapes are fixed) and results vary between GPU runs.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from noisybench.config import TrainConfig

#: Autocast dtype of each precision name (None: no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
#: The cuBLAS workspace setting that makes cuBLAS deterministic (CUDA docs, "Results reproducibility").
CUBLAS_DETERMINISTIC = ":4096:8"


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def capability(device: torch.device) -> tuple[int, int] | None:
    """CUDA compute capability of ``device`` (None off CUDA)."""
    if device.type != "cuda":
        return None
    return tuple(torch.cuda.get_device_capability(device))  # type: ignore[return-value]


def resolve_precision(amp: bool | str, device: torch.device, cap: tuple[int, int] | None = None) -> str:
    """``"bf16"`` or ``"fp32"`` for the ``amp`` setting on ``device`` (see the module docstring)."""
    if amp is True:
        return "bf16"
    if amp == "auto" and device.type == "cuda":
        cap = cap if cap is not None else capability(device)
        return "bf16" if cap is not None and cap >= (8, 0) else "fp32"
    return "fp32"


@dataclass(frozen=True)
class Runtime:
    """The resolved execution settings of one run (recorded as ``runtime`` in its final record)."""

    device: str
    device_name: str
    capability: str | None
    precision: str
    channels_last: bool
    compile: str | None
    deterministic: bool
    cudnn_benchmark: bool
    torch_version: str

    @property
    def torch_device(self) -> torch.device:
        """The device as a :class:`torch.device`."""
        return torch.device(self.device)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The forward passes' autocast dtype (None: fp32)."""
        return PRECISIONS[self.precision]

    def record(self) -> dict[str, Any]:
        """JSON-ready form, stored with the run."""
        return asdict(self)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Set torch's global determinism and cuDNN switches for a run; restore them afterwards.

        Also resets the device's peak-memory counter, so ``peak_mem_mb`` is this run's alone.
        """
        fill = torch.utils.deterministic
        saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                 torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, fill.fill_uninitialized_memory)
        if self.deterministic and self.torch_device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
        torch.use_deterministic_algorithms(self.deterministic)
        fill.fill_uninitialized_memory = False  # a debugging aid (NaN-filled torch.empty); it costs a memory pass
        torch.backends.cudnn.deterministic = self.deterministic
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        if self.torch_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.torch_device)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
            fill.fill_uninitialized_memory = saved[4]


def resolve_runtime(train: TrainConfig) -> Runtime:
    """The :class:`Runtime` of ``train`` on this machine."""
    device = resolve_device(train.device)
    cap = capability(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = "cpu"
    backend = None if train.compile is False else ("inductor" if train.compile is True else str(train.compile))
    return Runtime(
        device=str(device), device_name=name, capability=None if cap is None else f"{cap[0]}.{cap[1]}",
        precision=resolve_precision(train.amp, device, cap),
        channels_last=bool(train.channels_last) and device.type == "cuda",
        compile=backend, deterministic=bool(train.deterministic),
        cudnn_benchmark=device.type == "cuda" and not train.deterministic, torch_version=torch.__version__,
    )


def _as_float(out: Any) -> Any:
    """Floating outputs as float32: a tensor, or the tensors of a tuple, list or dict (extra outputs)."""
    if isinstance(out, torch.Tensor) and out.is_floating_point():
        return out.float()
    if isinstance(out, (tuple, list)):
        return type(out)(_as_float(o) for o in out)
    if isinstance(out, dict):
        return {k: _as_float(v) for k, v in out.items()}
    return out


class FastForward:
    """A network's forward pass under autocast (when a dtype is given) and/or compiled.

    Installed as the module's instance ``forward``. The module is passed to the (compiled)
    class forward as an argument, so a ``copy.deepcopy`` of the network runs its own weights;
    autocast is entered with ``with``, so it is left even when the forward raises (e.g. out of
    memory), and it wraps the compiled region instead of being traced by it.
    """

    def __init__(self, module: nn.Module, device_type: str, dtype: torch.dtype | None,
                 backend: str | None) -> None:
        self.module, self.device_type, self.dtype = module, device_type, dtype
        forward = type(module).forward
        self.fn = torch.compile(forward, backend=backend) if backend else forward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.dtype is None:
            return self.fn(self.module, *args, **kwargs)
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.fn(self.module, *args, **kwargs)
        return _as_float(out)


class GlobalAvgPool(nn.Module):
    """Global average pooling to (B, C, 1, 1) by a mean (deterministic backward on CUDA)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class GlobalMaxPool(nn.Module):
    """Global max pooling to (B, C, 1, 1); the gradient goes to one maximal input, as in max pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).max(dim=2).values[..., None, None]


def _is_global(size: Any) -> bool:
    return size == 1 or (isinstance(size, tuple | list) and tuple(size) == (1, 1))


def deterministic_pooling(net: nn.Module) -> int:
    """Replace global adaptive pooling layers of ``net`` (output 1x1) by :class:`GlobalAvgPool` /
    :class:`GlobalMaxPool`; returns how many were replaced.

    ``AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d`` have no deterministic CUDA backward (torch raises
    under ``use_deterministic_algorithms``). The replacements hold no state, so state dicts are
    unchanged. Other adaptive output sizes are left alone (and raise under determinism on CUDA).
    """
    replaced = 0
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d) and _is_global(child.output_size):
                setattr(parent, name, GlobalAvgPool())
            elif isinstance(child, nn.AdaptiveMaxPool2d) and _is_global(child.output_size) \
                    and not child.return_indices:
                setattr(parent, name, GlobalMaxPool())
            else:
                continue
            replaced += 1
    return replaced


def accelerate(net: nn.Module, runtime: Runtime, image_input: bool) -> None:
    """Apply ``runtime``'s options to ``net`` in place (state-dict keys unchanged).

    channels_last for image nets (CUDA only), deterministic pooling (CUDA with determinism), and
    a :class:`FastForward` when the precision is not fp32 or ``compile`` names a backend.
    """
    device = runtime.torch_device
    if runtime.channels_last and image_input:
        net.to(memory_format=torch.channels_last)
    if runtime.deterministic and device.type == "cuda":
        deterministic_pooling(net)
    if runtime.autocast_dtype is not None or runtime.compile:
        net.forward = FastForward(net, device.type, runtime.autocast_dtype, runtime.compile)  # type: ignore[method-assign]


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of the run so far: the device allocator's peak on CUDA (reset at the start of every
    run by :meth:`Runtime.applied`); on the CPU the process's peak resident set, which is never reset."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
