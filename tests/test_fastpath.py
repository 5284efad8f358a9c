"""Fast-path options of the trainer: amp / channels_last are CUDA-only, compile keeps results and checkpoints."""

from __future__ import annotations

import pytest
import torch

from noisybench.config import TrainConfig, parse_grid
from noisybench.errors import ConfigError
from noisybench.plan import expand_grid
from noisybench.trainer import Trainer, accelerate, topk_accuracy


def _run(**train) -> dict:
    grid = parse_grid({
        "grid": {"datasets": ["cifar-synthetic"], "methods": ["ce"], "noise": ["sym:0.2"], "seeds": [0]},
        "train": {"protocol": "cpu", "epochs": 1, **train},
        "datasets": {"cifar-synthetic": {"n_train": 300, "n_test": 60}},
    })
    return Trainer(expand_grid(grid)[0]).run()


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_amp_and_channels_last_apply_on_cuda_only(device: str) -> None:
    """``accelerate`` is given the device: on CUDA it converts the net and hooks bf16 in; on CPU nothing."""
    train = TrainConfig(amp=True, channels_last=True)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    accelerate(net, train, torch.device(device), image_input=True)  # converts in place; no kernel runs
    weight = net[0].weight
    on_cuda = device == "cuda"
    assert weight.is_contiguous(memory_format=torch.channels_last) == on_cuda
    assert weight.is_contiguous() != on_cuda
    assert bool(net._forward_pre_hooks) == on_cuda and bool(net._forward_hooks) == on_cuda


def test_cifar_batches_stay_uint8_until_preprocess() -> None:
    grid = parse_grid({
        "grid": {"datasets": ["cifar-synthetic"], "methods": ["ce"], "noise": ["none"], "seeds": [0]},
        "train": {"protocol": "cpu"}, "datasets": {"cifar-synthetic": {"n_train": 100, "n_test": 20}},
    })
    ctx, _ = Trainer(expand_grid(grid)[0]).setup()
    assert ctx.data.x_train.dtype == torch.uint8
    ctx.begin_epoch(0)
    batch = next(iter(ctx.train_batches()))
    assert batch.raw.dtype == torch.uint8 and batch.x.dtype == torch.float32
    assert not torch.equal(batch.x, ctx.prepare(batch.raw))  # augmented view differs from the test view


@pytest.mark.slow
def test_compile_gives_the_same_run_and_plain_checkpoint_keys() -> None:
    plain = _run(arch="mlp", arch_kwargs={"hidden": [16]})
    grid = parse_grid({
        "grid": {"datasets": ["cifar-synthetic"], "methods": ["ce"], "noise": ["sym:0.2"], "seeds": [0]},
        "train": {"protocol": "cpu", "epochs": 1, "arch": "mlp", "arch_kwargs": {"hidden": [16]}, "compile": True},
        "datasets": {"cifar-synthetic": {"n_train": 300, "n_test": 60}},
    })
    trainer = Trainer(expand_grid(grid)[0])
    ctx, _ = trainer.setup()
    assert not any(k.startswith("_orig_mod") for k in ctx.nets[0].state_dict())
    compiled = trainer.run()
    assert compiled["history"][0]["test_acc"] == plain["history"][0]["test_acc"]
    assert compiled["history"][0]["train_loss"] == pytest.approx(plain["history"][0]["train_loss"], rel=1e-5)


def test_topk_accuracy_and_config_validation() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.05], [0.2, 0.3, 0.5]])
    labels = torch.tensor([0, 2, 2])
    assert topk_accuracy(logits, labels, 1) == pytest.approx(100 / 3)
    assert topk_accuracy(logits, labels, 2) == pytest.approx(200 / 3)
    assert topk_accuracy(logits, labels, 5) == 100.0
    with pytest.raises(ConfigError, match="num_workers"):
        TrainConfig.from_dict({"num_workers": -1})


def test_bf16_forward_hooks_compute_in_bf16_and_return_float32() -> None:
    from noisybench.trainer import _Bf16Forward

    class Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)
            self.inner_dtype = None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.lin(x)
            self.inner_dtype = out.dtype
            return out

    net = Probe()
    hooks = _Bf16Forward("cpu")  # CPU autocast supports bf16 too; the trainer enables it on CUDA only
    net.register_forward_pre_hook(hooks.enter)
    net.register_forward_hook(hooks.leave)
    out = net(torch.randn(5, 4))
    assert net.inner_dtype == torch.bfloat16 and out.dtype == torch.float32
    assert not torch.is_autocast_enabled("cpu")  # the context was left
