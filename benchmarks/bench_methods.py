"""Cost of each method: its epoch time relative to CE on the same data, in the same process.

Every method is set up through the shared trainer on the same dataset, noise and seed. Rounds
interleave the methods (one epoch of each per round, in rotating order) so that load from
other processes hits all of them alike; the ratio is the median over rounds of
(method epoch time) / (CE epoch time of the same round). An epoch is what the trainer times:
``train_epoch``, predictions on the validation and test sets, and ``end_epoch`` diagnostics.
Methods with a warm-up are measured after it (ALR with ``warmup_end = 0``, DivideMix with
``warmup = 0``), where they cost the most.

ELR and ALR must stay within 1.2x of CE (issue 3); DivideMix's factor is reported.

Run: ``pytest benchmarks/bench_methods.py --benchmark-enable -s`` or
``python benchmarks/bench_methods.py [dataset ...]`` for a table.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from noisybench.config import Grid
from noisybench.plan import expand_grid
from noisybench.trainer import Trainer

ROUNDS = 7
LIMIT = 1.2
#: (label, method, hyperparameter overrides): each method in its most expensive phase.
METHODS: list[tuple[str, str, dict[str, Any]]] = [
    ("ce", "ce", {}),
    ("gce", "gce", {}),
    ("elr", "elr", {}),
    ("alr", "alr", {"warmup_end": 0}),
    ("dividemix", "dividemix", {"warmup": 0}),
]


def epoch_runner(dataset: str, method: str, hparams: dict[str, Any]) -> Callable[[int], None]:
    """A function running one full epoch (train, evaluate, diagnostics) of ``method``."""
    grid = Grid(name="bench", datasets=[dataset], methods=[method], noise=["sym:0.5"], seeds=[1],
                train={"device": "cpu"}, method_params={method: hparams} if hparams else {})
    ctx, impl = Trainer(expand_grid(grid)[0]).setup()

    def one_epoch(epoch: int) -> None:
        ctx.begin_epoch(epoch)
        for net in ctx.nets:
            net.train()
        impl.train_epoch(ctx, epoch)
        with ctx.eval_mode():
            predict = lambda x: impl.predict(ctx, x)  # noqa: E731
            ctx.last_val_acc = float(ctx.logits_on(predict, ctx.data.x_val).argmax(1).eq(ctx.data.y_val).float().mean())
            ctx.logits_on(predict, ctx.data.x_test)
        impl.end_epoch(ctx, epoch)

    return one_epoch


def cost_ratios(dataset: str, rounds: int = ROUNDS) -> dict[str, dict[str, float]]:
    """Per method: median epoch seconds and median per-round ratio to CE (plus min/max ratios)."""
    runners = {label: epoch_runner(dataset, m, hp) for label, m, hp in METHODS}
    for run in runners.values():
        run(0)  # warm-up: first-call allocations
    times: dict[str, list[float]] = {label: [] for label in runners}
    labels = list(runners)
    for r in range(rounds):
        order = labels[r % len(labels):] + labels[: r % len(labels)]
        for label in order:
            start = time.perf_counter()
            runners[label](r + 1)
            times[label].append(time.perf_counter() - start)
    out = {}
    for label in labels:
        ratios = [t / c for t, c in zip(times[label], times["ce"])]
        out[label] = {"epoch_s": statistics.median(times[label]), "ratio": statistics.median(ratios),
                      "ratio_min": min(ratios), "ratio_max": max(ratios)}
    return out


def format_table(dataset: str, result: dict[str, dict[str, float]]) -> str:
    """Plain-text table of :func:`cost_ratios`."""
    lines = [f"{dataset}: epoch time relative to CE (median of {ROUNDS} interleaved rounds, 1 thread)",
             f"{'method':<10} {'epoch [s]':>10} {'x CE':>6} {'min':>6} {'max':>6}"]
    for label, r in result.items():
        lines.append(f"{label:<10} {r['epoch_s']:>10.3f} {r['ratio']:>6.2f} "
                     f"{r['ratio_min']:>6.2f} {r['ratio_max']:>6.2f}")
    return "\n".join(lines)


@pytest.mark.parametrize("dataset", ["digits", "mnist1d"])
def test_method_cost_relative_to_ce(benchmark, dataset: str) -> None:
    result = benchmark.pedantic(cost_ratios, args=(dataset,), rounds=1, iterations=1)
    for label, r in result.items():
        benchmark.extra_info[f"{label}_ratio"] = r["ratio"]
    print("\n" + format_table(dataset, result))
    for label in ("elr", "alr"):
        assert result[label]["ratio"] <= LIMIT, f"{label} costs {result[label]['ratio']:.2f}x CE (limit {LIMIT}x)"


if __name__ == "__main__":
    torch.set_num_threads(1)
    for name in sys.argv[1:] or ["digits", "mnist1d"]:
        print(format_table(name, cost_ratios(name)), flush=True)
