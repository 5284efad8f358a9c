"""Host-device synchronisations: the counter itself, and the training steps of every method (simulated on the CPU)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from noisybench.config import parse_grid
from noisybench.plan import expand_grid
from noisybench.registry import METHODS
from noisybench.syncs import HostSyncCounter
from noisybench.trainer import Trainer

#: Options that put each method's main phase into epoch 1 (DivideMix: co-divide and MixMatch).
MAIN_PHASE = {"alr": {"warmup_end": 0}, "dividemix": {"warmup": 1}, "gce": {"truncated": True}}


def test_counter_sees_reads_copies_and_masks_but_not_device_work() -> None:
    dev = torch.device("cpu")
    with HostSyncCounter(dev) as counter:
        on_device = torch.arange(10, device=dev)
        doubled = on_device * 2                      # device work: free
        host = torch.randperm(10)                    # made on the host on purpose
        moved = host.to(dev)                         # copy 1
        _ = doubled[moved]                           # device indexed by a device index: free
        _ = float(doubled.sum())                     # read 1
        _ = doubled[doubled > 4]                     # bool mask: read 2
        _ = torch.tensor(3.0, device=dev)            # copy 2 (host number to the device)
        _ = doubled.new_full((), 3.0)                # a fill on the device: free
        _ = int(host[0])                             # host tensor: free
        _ = doubled[host]                            # implicit copy 3 of a host index
    assert counter.total == 5 and counter.counts["copy:to"] == 1 and counter.counts["bool-mask index"] == 1
    assert counter.counts["copy:tensor"] == 1 and counter.counts["copy:implicit __getitem__"] == 1


def test_adams_host_step_counter_is_no_sync() -> None:
    """PyTorch's Adam keeps its step count on the host (``device="cpu"``) and reads it every step: free on a GPU."""
    dev = torch.device("cpu")
    param = torch.nn.Parameter(torch.ones(3, device=dev))
    adam = torch.optim.Adam([param], lr=0.1)
    with HostSyncCounter(dev) as counter:
        for _ in range(3):
            param.grad = torch.ones(3, device=dev)
            adam.step()
        on_host = torch.zeros((), device="cpu")
        _ = float(on_host)                            # a host value: free
        _ = torch.zeros((), device=dev).item()         # the run's device, named as a torch.device: a read
    assert counter.total == 1 and counter.counts["item"] == 1


def _steps_and_syncs(method: str, hparams: dict[str, Any]) -> tuple[list[int], int]:
    grid = parse_grid({
        "grid": {"datasets": ["cifar-synthetic"], "methods": [method], "noise": ["sym:0.4"], "seeds": [0]},
        "train": {"protocol": "cpu", "epochs": 3, "device": "cpu", "arch": "mlp", "arch_kwargs": {"hidden": [16]},
                  "batch_size": 32},
        "methods": {method: hparams} if hparams else {},
        "datasets": {"cifar-synthetic": {"n_train": 300, "n_test": 40}},
    })
    ctx, impl = Trainer(expand_grid(grid)[0]).setup()
    ctx.begin_epoch(0)
    impl.train_epoch(ctx, 0)  # warm-up epoch: lazily built constants, DivideMix's warm-up
    marks: list[tuple[Any, int]] = []
    optimize = ctx.optimize

    def step(loss: torch.Tensor, which: list[int] | None = None, extra: Any = ()) -> None:
        optimize(loss, which, extra)
        marks.append((which, counter.total))

    ctx.optimize = step  # type: ignore[method-assign]
    ctx.begin_epoch(1)
    with HostSyncCounter(ctx.device) as counter:
        impl.train_epoch(ctx, 1)
    # syncs between consecutive steps of one network (DivideMix co-divides between its two networks' passes)
    per_step = [b - a for (net_a, a), (net_b, b) in zip(marks, marks[1:]) if net_a == net_b]
    return per_step, counter.total - sum(per_step)


@pytest.mark.parametrize("method", METHODS.list())
def test_training_steps_do_not_synchronise(method: str) -> None:
    """At most one sync per step for single-network methods (in fact none), a few per epoch for DivideMix."""
    per_step, rest = _steps_and_syncs(method, MAIN_PHASE.get(method, {}))
    assert len(per_step) >= 5
    assert max(per_step) <= (1 if METHODS.get(method).num_networks == 1 else 0), per_step
    assert sum(per_step) <= 1  # at most one of them at all (none today)
    assert rest <= (2 if METHODS.get(method).num_networks == 1 else 20)  # per epoch: mean loss, co-divide, GMM
