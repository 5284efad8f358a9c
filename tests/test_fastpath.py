"""Fast-path options: the CPU default is plain fp32; amp + compile run anywhere; checkpoints keep their keys."""

from __future__ import annotations

import math

import pytest
import torch

from noisybench.config import TrainConfig, parse_grid
from noisybench.errors import ConfigError
from noisybench.orchestration.runner import execute_run
from noisybench.plan import expand_grid
from noisybench.runtime import Runtime, accelerate, resolve_runtime
from noisybench.store import ResultStore
from noisybench.trainer import Trainer, topk_accuracy


def _run(**train) -> dict:
    grid = parse_grid({
        "grid": {"datasets": ["cifar-synthetic"], "methods": ["ce"], "noise": ["sym:0.2"], "seeds": [0]},
        "train": {"protocol": "cpu", "epochs": 1, **train},
        "datasets": {"cifar-synthetic": {"n_train": 300, "n_test": 60}},
    })
    return Trainer(expand_grid(grid)[0]).run()


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_channels_last_and_default_amp_apply_on_cuda_only(device: str) -> None:
    """The CPU default leaves the network alone; on CUDA (Ampere+) it is converted and its forward wrapped."""
    if device == "cpu":
        runtime = resolve_runtime(TrainConfig(device="cpu"))
    else:  # no GPU needed: converting a module's memory format runs no kernel
        runtime = Runtime(device="cuda", device_name="gpu", capability="8.0", precision="bf16", channels_last=True,
                          compile=None, deterministic=True, cudnn_benchmark=False, torch_version=torch.__version__)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    accelerate(net, runtime, image_input=True)
    weight = net[0].weight
    on_cuda = device == "cuda"
    assert weight.is_contiguous(memory_format=torch.channels_last) == on_cuda
    assert weight.is_contiguous() != on_cuda
    assert ("forward" in vars(net)) == on_cuda
    assert isinstance(net[1], torch.nn.AdaptiveAvgPool2d) != on_cuda  # deterministic pooling on CUDA


def test_grid_with_amp_and_compile_runs_to_finite_metrics_on_cpu(tmp_path) -> None:
    """bf16 autocast plus torch.compile (eager backend), the combination the GPU uses, through the runner."""
    grid = parse_grid({
        "grid": {"datasets": ["cifar-synthetic"], "methods": ["ce", "dividemix"], "noise": ["sym:0.2"], "seeds": [0]},
        "train": {"protocol": "cpu", "epochs": 2, "device": "cpu", "amp": True, "compile": "eager",
                  "arch": "airbench", "arch_kwargs": {"widths": [8, 16, 16], "stem": 8}, "batch_size": 64},
        "methods": {"dividemix": {"warmup": 1}},
        "datasets": {"cifar-synthetic": {"n_train": 256, "n_test": 64}},
    })
    for run in expand_grid(grid):
        record = execute_run(run, tmp_path, claim=False, raise_errors=True)
        assert record["status"] == "done", record.get("reason")
        assert record["runtime"]["precision"] == "bf16" and record["runtime"]["compile"] == "eager"
        history = ResultStore(tmp_path).history(run.run_id)
        assert len(history) == 2
        assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["test_acc"]) for row in history)
    assert not torch.is_autocast_enabled("cpu")


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
