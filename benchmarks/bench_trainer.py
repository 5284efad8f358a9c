"""Trainer overhead: one training epoch through the suite vs a plain PyTorch loop.

Both sides use the same model architecture and initial weights, the same data (resident
tensors, batches by indexing), optimiser and batch size. Rounds interleave the two, and the
median of per-round throughput ratios (plain time / suite time) must reach 0.95.

Run: ``pytest benchmarks/bench_trainer.py --benchmark-enable`` (or ``tox -e bench``).
"""

from __future__ import annotations

import copy
import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from noisybench.config import Grid
from noisybench.plan import expand_grid
from noisybench.trainer import Trainer

ROUNDS = 25
TARGET = 0.95


def _suite_and_plain(dataset: str, epochs_hint: int = 5):
    grid = Grid(name="bench", datasets=[dataset], methods=["ce"], noise=["sym:0.2"], seeds=[1],
                train={"epochs": epochs_hint, "augment": False})
    trainer = Trainer(expand_grid(grid)[0])
    ctx, method = trainer.setup()
    plain_model = copy.deepcopy(ctx.nets[0])
    opt = torch.optim.SGD(plain_model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x, y, bs = ctx.data.x_train, ctx.data.y_train, ctx.batch_size

    def suite_epoch(epoch: int) -> None:
        ctx.begin_epoch(epoch)
        method.train_epoch(ctx, epoch)

    def plain_epoch(epoch: int) -> None:
        plain_model.train()
        perm = torch.randperm(len(x))
        for start in range(0, len(x), bs):
            idx = perm[start : start + bs]
            loss = F.cross_entropy(plain_model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    for net in ctx.nets:
        net.train()
    return suite_epoch, plain_epoch


def _timed(fn, epoch: int) -> float:
    start = time.perf_counter()
    fn(epoch)
    return time.perf_counter() - start


@pytest.mark.parametrize("dataset", ["digits", "mnist1d"])
def test_trainer_epoch_throughput_vs_plain_loop(benchmark, dataset: str) -> None:
    suite_epoch, plain_epoch = _suite_and_plain(dataset)
    suite_epoch(0), plain_epoch(0)  # warm-up

    def interleaved() -> list[float]:
        ratios = []
        for r in range(ROUNDS):
            if r % 2:
                t_plain, t_suite = _timed(plain_epoch, r), _timed(suite_epoch, r)
            else:
                t_suite, t_plain = _timed(suite_epoch, r), _timed(plain_epoch, r)
            ratios.append(t_plain / t_suite)
        return ratios

    ratios = benchmark.pedantic(interleaved, rounds=1, iterations=1)
    median = statistics.median(ratios)
    benchmark.extra_info["throughput_ratio_median"] = median
    print(f"\n{dataset}: suite/plain throughput ratio median {median:.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {ROUNDS} rounds)")
    assert median >= TARGET, f"suite trainer reaches only {median:.2f} of the plain loop's throughput"
