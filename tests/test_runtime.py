"""The resolved runtime: precision by capability, autocast that cannot leak, deterministic pooling, global switches."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from noisybench.config import TrainConfig
from noisybench.errors import ConfigError
from noisybench.runtime import (
    FastForward,
    GlobalAvgPool,
    GlobalMaxPool,
    Runtime,
    accelerate,
    deterministic_pooling,
    resolve_precision,
    resolve_runtime,
)


def _runtime(**changes) -> Runtime:
    base = dict(device="cpu", device_name="cpu", capability=None, precision="bf16", channels_last=False,
                compile=None, deterministic=True, cudnn_benchmark=False, torch_version=torch.__version__)
    return Runtime(**{**base, **changes})


@pytest.mark.parametrize(("amp", "device", "cap", "expected"), [
    ("auto", "cpu", None, "fp32"),        # the CPU default keeps every number
    ("auto", "cuda", (7, 0), "fp32"),     # Volta: no bf16 convolutions in cuDNN
    ("auto", "cuda", (7, 5), "fp32"),     # Turing
    ("auto", "cuda", (8, 0), "bf16"),     # Ampere and later
    ("auto", "cuda", (9, 0), "bf16"),
    (True, "cpu", None, "bf16"),          # explicit: anywhere, the CPU included
    (True, "cuda", (7, 0), "bf16"),
    (False, "cuda", (9, 0), "fp32"),
])
def test_precision_follows_the_setting_and_the_capability(amp, device, cap, expected) -> None:
    assert resolve_precision(amp, torch.device(device), cap) == expected


def test_cpu_runtime_of_the_default_recipe_is_fp32_deterministic_and_recorded() -> None:
    runtime = resolve_runtime(TrainConfig(device="cpu"))
    assert (runtime.precision, runtime.channels_last, runtime.compile, runtime.deterministic) == \
        ("fp32", False, None, True)
    record = runtime.record()
    assert record["device"] == "cpu" and record["precision"] == "fp32" and record["deterministic"] is True
    assert resolve_runtime(TrainConfig(device="cpu", amp=True, compile=True)).compile == "inductor"
    assert resolve_runtime(TrainConfig(device="cpu", compile="eager")).compile == "eager"


@pytest.mark.parametrize(("key", "value"), [("amp", "fp16"), ("amp", 1), ("compile", "tensorrt"),
                                            ("compile", 1), ("deterministic", "yes")])
def test_bad_runtime_settings_name_the_key(key, value) -> None:
    with pytest.raises(ConfigError, match=rf"\[train\]:? {key} must be"):
        TrainConfig.from_dict({key: value})


class _Probe(nn.Module):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.fail = fail
        self.inner_dtype: torch.dtype | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x)
        self.inner_dtype = out.dtype
        if self.fail:
            raise RuntimeError("CUDA out of memory (simulated)")
        return out


def test_amp_forward_computes_in_bf16_and_returns_float32() -> None:
    net = _Probe()
    accelerate(net, _runtime(), image_input=False)
    out = net(torch.randn(5, 4))
    assert net.inner_dtype == torch.bfloat16 and out.dtype == torch.float32
    assert not torch.is_autocast_enabled("cpu")
    assert (net.lin.weight @ torch.randn(4, 2)).dtype == torch.float32  # maths after the forward: fp32


def test_autocast_is_off_after_a_forward_pass_that_raised() -> None:
    """A failed forward (e.g. out of memory) must not leave the next run's loss maths in bf16."""
    net = _Probe(fail=True)
    accelerate(net, _runtime(), image_input=False)
    with pytest.raises(RuntimeError, match="out of memory"):
        net(torch.randn(5, 4))
    assert net.inner_dtype == torch.bfloat16  # it did run under autocast
    assert not torch.is_autocast_enabled("cpu")
    assert (torch.randn(3, 3) @ torch.randn(3, 3)).dtype == torch.float32


def test_fp32_without_compile_leaves_the_network_untouched() -> None:
    net = _Probe()
    accelerate(net, _runtime(precision="fp32"), image_input=False)
    assert "forward" not in vars(net)


def test_deepcopy_of_an_accelerated_network_runs_its_own_weights() -> None:
    """Truncated GCE deep-copies the network to load its best weights: the copy must not call the original."""
    net = _Probe()
    accelerate(net, _runtime(), image_input=False)
    twin = copy.deepcopy(net)
    assert isinstance(twin.forward, FastForward) and twin.forward.module is twin
    with torch.no_grad():
        twin.lin.weight.zero_()
        twin.lin.bias.zero_()
    x = torch.randn(2, 4)
    assert torch.equal(twin(x), torch.zeros(2, 3)) and not torch.equal(net(x), torch.zeros(2, 3))


def test_compiled_forward_matches_eager_and_keeps_state_dict_keys() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    plain = copy.deepcopy(net)
    keys = list(net.state_dict())
    accelerate(net, _runtime(precision="fp32", compile="eager"), image_input=False)
    x = torch.randn(6, 4)
    assert torch.equal(net(x), plain(x)) and list(net.state_dict()) == keys


def test_compile_with_bf16_autocast_runs_forward_and_backward() -> None:
    """The combination that crashed Dynamo with hook-managed autocast (``AutocastModeVariable``)."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    accelerate(net, _runtime(compile="eager"), image_input=True)
    out = net(torch.randn(3, 3, 8, 8))
    out.sum().backward()
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert not torch.is_autocast_enabled("cpu")


def test_deterministic_pooling_replaces_global_pools_with_the_same_values_and_gradients() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    maxnet = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveMaxPool2d((1, 1)), nn.Flatten())
    other = nn.Sequential(nn.AdaptiveAvgPool2d(2))
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    for model, kind in ((net, GlobalAvgPool), (maxnet, GlobalMaxPool)):
        model.double()
        reference = copy.deepcopy(model)
        keys = list(model.state_dict())
        assert deterministic_pooling(model) == 1 and isinstance(model[1], kind)
        assert list(model.state_dict()) == keys
        out, ref = model(x), reference(x)
        torch.testing.assert_close(out, ref)
        out.sum().backward()
        ref.sum().backward()
        torch.testing.assert_close(model[0].weight.grad, reference[0].weight.grad)
    assert deterministic_pooling(other) == 0  # not global: left alone


def test_deterministic_pooling_only_on_cuda() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1))
    accelerate(net, _runtime(precision="fp32"), image_input=True)  # CPU: the quick grid's numbers stay
    assert isinstance(net[1], nn.AdaptiveAvgPool2d)


def test_applied_sets_and_restores_the_global_switches() -> None:
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    with _runtime(deterministic=True).applied():
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    with pytest.raises(ValueError), _runtime(deterministic=False, cudnn_benchmark=True).applied():
        assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
        raise ValueError
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark) == before


@pytest.mark.parametrize("arch", ["airbench", "preact_resnet18", "resnet34", "vgg19_bn", "resnet50"])
def test_every_image_architecture_can_run_deterministically_on_cuda(arch: str) -> None:
    """No adaptive pooling (which raises under torch's deterministic mode on CUDA) survives the swap."""
    from noisybench.archs import create_model

    net = create_model(arch, (3, 32, 32), 10)
    keys = list(net.state_dict())
    assert deterministic_pooling(net) >= 1
    assert not any(isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) for m in net.modules())
    assert list(net.state_dict()) == keys
