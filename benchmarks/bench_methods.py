"""Cost of each method as the quick grid runs it: whole runs, relative to CE's run on the same data.

Each method trains the quick grid's own run (``benchmarks/quick.toml``: its recipe, schedule and
hyperparameters; noise ``sym:0.5``, seed 1) from scratch through the shared trainer: data, networks, every
epoch with its evaluation, no store. Rounds interleave the methods (one whole run of each per round, in
rotating order) so that load from other processes hits all of them alike; a method's ratio is the median
over rounds of (its run time) / (CE's run time in the same round).

Limits (:data:`LIMITS`): a fixed ratio to CE (ELR, ALR, the elementwise losses: 1.10) or the method's FLOP
ratio: the multiply-add FLOPs (convolutions and matrix products, forward and backward, counted by
``torch.utils.flop_counter``) of its whole run over CE's, on the same runs, so a two-network method may cost what
its algorithm computes and no more. Most limits are asserted on MNIST-1D only: on 8x8 digit images (a 1.5 ms step
of a small MLP) every extra small operation of a loss and its backward pass weighs in, so those ratios are
reported, not asserted. A method the quick grid does not list runs with the quick grid's settings
(:func:`grid_run`) and its own default hyperparameters.

Run: ``pytest benchmarks/bench_methods.py --benchmark-enable -s`` or
``python benchmarks/bench_methods.py [dataset ...]`` for a table (about 4 min for MNIST-1D, 1 min for digits).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from noisybench.config import RunConfig, load_grid
from noisybench.plan import expand_grid
from noisybench.trainer import Trainer

GRID = Path(__file__).with_name("quick.toml")
ROUNDS = 3
BOTH, MNIST1D = ("digits", "mnist1d"), ("mnist1d",)
#: Each method's limit relative to CE (a ratio, or "flops": its FLOP ratio) and the datasets where it is asserted.
LIMITS: dict[str, tuple[float | str, tuple[str, ...]]] = {
    "elr": (1.10, BOTH), "alr": (1.10, BOTH), "dividemix": ("flops", BOTH),
    "apl": (1.10, MNIST1D), "sce": (1.10, MNIST1D), "gls": (1.10, MNIST1D),
    "coteaching": ("flops", MNIST1D), "jocor": ("flops", MNIST1D),
}
METHODS = ("ce", "gce", *LIMITS)
FLOP_LIMITED = tuple(m for m, (limit, _) in LIMITS.items() if limit == "flops")
NOISE, SEED = "sym:0.5", 1


def grid_run(dataset: str, method: str) -> RunConfig:
    """The quick grid's run of ``method`` on ``dataset`` (noise :data:`NOISE`, seed :data:`SEED`); a method the
    quick grid does not list runs with the grid's settings all the same."""
    grid = load_grid(GRID)
    if method not in grid.methods:
        grid = dataclasses.replace(grid, methods=[*grid.methods, method])
    for run in expand_grid(grid):
        if (run.dataset.name, run.method, run.noise, run.seed) == (dataset, method, NOISE, SEED):
            return run
    raise LookupError(f"the quick grid has no {method} run on {dataset}")


def run_seconds(run: RunConfig) -> float:
    """Wall time of ``run`` trained from scratch (data, networks, every epoch and its evaluation)."""
    start = time.perf_counter()
    Trainer(run).run()
    return time.perf_counter() - start


def run_flops(run: RunConfig) -> int:
    """Multiply-add FLOPs of the whole ``run`` (forward and backward), as ``torch.utils.flop_counter`` counts."""
    with FlopCounterMode(display=False) as counter:
        Trainer(run).run()
    return int(counter.get_total_flops())


def whole_run_costs(dataset: str, rounds: int = ROUNDS) -> dict[str, dict[str, float]]:
    """Per method: median run seconds and median per-round ratio to CE (min/max too); the FLOP ratios of the
    :data:`FLOP_LIMITED` methods, their limits."""
    runs = {m: grid_run(dataset, m) for m in METHODS}
    ce_flops = run_flops(runs["ce"])
    flop_ratios = {m: run_flops(runs[m]) / ce_flops for m in FLOP_LIMITED}
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for r in range(rounds):
        for method in METHODS[r % len(METHODS):] + METHODS[: r % len(METHODS)]:
            times[method].append(run_seconds(runs[method]))
    out = {}
    for method in METHODS:
        ratios = [t / c for t, c in zip(times[method], times["ce"])]
        out[method] = {"run_s": statistics.median(times[method]), "ratio": statistics.median(ratios),
                       "ratio_min": min(ratios), "ratio_max": max(ratios),
                       "limit": flop_ratios.get(method, _fixed_limit(method))}
    return out


def _fixed_limit(method: str) -> float:
    limit = LIMITS.get(method, (float("nan"), ()))[0]
    return float(limit) if not isinstance(limit, str) else float("nan")


def format_table(dataset: str, result: dict[str, dict[str, float]]) -> str:
    """Plain-text table of :func:`whole_run_costs`."""
    lines = [f"{dataset}: whole quick-grid run relative to CE (median of {ROUNDS} interleaved rounds, 1 thread)",
             f"{'method':<10} {'run [s]':>8} {'x CE':>6} {'min':>6} {'max':>6} {'limit':>6}"]
    for label, r in result.items():
        lines.append(f"{label:<10} {r['run_s']:>8.2f} {r['ratio']:>6.2f} {r['ratio_min']:>6.2f} "
                     f"{r['ratio_max']:>6.2f} {r['limit']:>6.2f}")
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits", "mnist1d"])
def test_whole_run_cost_relative_to_ce(benchmark, dataset: str) -> None:
    result = benchmark.pedantic(whole_run_costs, args=(dataset,), rounds=1, iterations=1)
    for label, r in result.items():
        benchmark.extra_info[f"{label}_ratio"] = r["ratio"]
    for label in FLOP_LIMITED:
        benchmark.extra_info[f"{label}_flop_ratio"] = result[label]["limit"]
    print("\n" + format_table(dataset, result))
    for label in (m for m, (_, where) in LIMITS.items() if dataset in where):
        r = result[label]
        assert r["ratio"] <= r["limit"], f"{label} costs {r['ratio']:.2f}x CE (limit {r['limit']:.2f}x)"


if __name__ == "__main__":
    torch.set_num_threads(1)
    for name in sys.argv[1:] or ["digits", "mnist1d"]:
        print(format_table(name, whole_run_costs(name)), flush=True)
