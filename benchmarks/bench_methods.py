"""Cost of each method as the CPU board runs it: whole runs, relative to CE's run on the same data.

Each method trains the CPU board's own run (``benchmarks/cpu.toml``: its recipe, schedule and
hyperparameters; noise ``sym:0.5``, seed 1) from scratch through the shared trainer: data, networks, every
epoch with its evaluation, no store. In each round every method's run trains once, the runs taking turns epoch by
epoch (:mod:`interleave`; the rotation starts at another method each round), so that the host's slow phases, which
last longer than a whole run, hit all of them alike; a method's ratio is the median over rounds of (its run time) /
(CE's run time in the same round). A method the grid does not list
trains the run the grid would give it (:func:`grid_run`): its datasets, recipe and noise, with the method's
own default hyperparameters.

Limits (:data:`LIMITS`): a fixed ratio to CE (ELR, ALR and the single-network losses: 1.10; PES 1.30), or the
method's FLOP ratio: the multiply-add FLOPs (convolutions and matrix products, forward and backward, counted by
``torch.utils.flop_counter``) of its whole run over CE's, on the same runs, so a method with extra passes or a
second network may cost what its algorithm computes and no more. Several limits are asserted on MNIST-1D only:
on 8x8 digit images (a 1.5 ms step of a small MLP) every extra small operation of a loss and its backward pass
weighs in, so those ratios are reported, not asserted.

Run: ``pytest benchmarks/bench_methods.py --benchmark-enable -s`` or
``python benchmarks/bench_methods.py [dataset ...] [--methods ce,pes,...]`` for a table.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from pathlib import Path

import pytest
import torch
from interleave import interleaved_run_seconds
from torch.utils.flop_counter import FlopCounterMode

from noisybench.config import RunConfig, load_grid
from noisybench.plan import expand_grid
from noisybench.trainer import Trainer

GRID = Path(__file__).with_name("cpu.toml")
ROUNDS = 3
NOISE, SEED = "sym:0.5", 1
BOTH, MNIST1D = ("digits", "mnist1d"), ("mnist1d",)
#: Each method's limit relative to CE (a ratio, or "flops": its FLOP ratio) and the datasets where it is asserted.
LIMITS: dict[str, tuple[float | str, tuple[str, ...]]] = {
    "elr": (1.10, BOTH), "alr": (1.10, BOTH), "dividemix": ("flops", BOTH),
    "apl": (1.10, MNIST1D), "sce": (1.10, MNIST1D), "gls": (1.10, MNIST1D), "selc": (1.10, MNIST1D),
    "coteaching": ("flops", MNIST1D), "jocor": ("flops", MNIST1D),
    "pes": (1.30, BOTH), "pes-semi": ("flops", BOTH), "elr-plus": ("flops", BOTH),
    "sop": (1.10, MNIST1D), "sop-plus": ("flops", MNIST1D),
}
METHODS = ("ce", "gce", *LIMITS)


def grid_run(dataset: str, method: str) -> RunConfig:
    """The CPU board's run of ``method`` on ``dataset`` (noise :data:`NOISE`, seed :data:`SEED`); for a method the
    grid does not list, the run the grid would give it."""
    grid = load_grid(GRID)
    if method not in grid.methods:
        grid = dataclasses.replace(grid, methods=[method], method_params={})
    for run in expand_grid(grid):
        if (run.dataset.name, run.method, run.noise, run.seed) == (dataset, method, NOISE, SEED):
            return run
    raise LookupError(f"the CPU board has no {method} run on {dataset}")


def run_flops(run: RunConfig) -> int:
    """Multiply-add FLOPs of the whole ``run`` (forward and backward), as ``torch.utils.flop_counter`` counts."""
    with FlopCounterMode(display=False) as counter:
        Trainer(run).run()
    return int(counter.get_total_flops())


def whole_run_costs(dataset: str, rounds: int = ROUNDS,
                    methods: tuple[str, ...] = METHODS) -> dict[str, dict[str, float]]:
    """Per method: median run seconds and median per-round ratio to CE (min/max too), its limit (see
    :data:`LIMITS`) and its FLOP ratio where counted."""
    methods = ("ce", *(m for m in methods if m != "ce"))
    runs = {m: grid_run(dataset, m) for m in methods}
    limited = [m for m in methods if m in LIMITS]
    ce_flops = run_flops(runs["ce"]) if limited else 0
    flops = {m: run_flops(runs[m]) / ce_flops for m in limited}
    for run in runs.values():  # a first run pays lazy imports and kernel set-up: keep them out of the rounds
        Trainer(dataclasses.replace(run, train=dataclasses.replace(run.train, epochs=1))).run()
    times: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(rounds):
        order = methods[r % len(methods):] + methods[: r % len(methods)]
        for method, seconds in zip(order, interleaved_run_seconds([runs[m] for m in order])):
            times[method].append(seconds)
    out = {}
    for method in methods:
        ratios = [t / c for t, c in zip(times[method], times["ce"])]
        limit = LIMITS.get(method, (float("nan"), ()))[0]
        out[method] = {"run_s": statistics.median(times[method]), "ratio": statistics.median(ratios),
                       "ratio_min": min(ratios), "ratio_max": max(ratios),
                       "limit": flops[method] if limit == "flops" else float(limit),
                       "flops": flops.get(method, float("nan"))}
    return out


def format_table(dataset: str, result: dict[str, dict[str, float]]) -> str:
    """Plain-text table of :func:`whole_run_costs` (``*``: limit asserted on this dataset)."""
    lines = [f"{dataset}: whole CPU-board run relative to CE (median of {ROUNDS} rounds, epochs interleaved, 1 thread)",
             f"{'method':<10} {'run [s]':>8} {'x CE':>6} {'min':>6} {'max':>6} {'limit':>7} {'FLOPs':>6}"]
    for label, r in result.items():
        mark = "*" if dataset in LIMITS.get(label, (0, ()))[1] else " "
        lines.append(f"{label:<10} {r['run_s']:>8.2f} {r['ratio']:>6.2f} {r['ratio_min']:>6.2f} "
                     f"{r['ratio_max']:>6.2f} {r['limit']:>6.2f}{mark} {r['flops']:>6.2f}")
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits", "mnist1d"])
def test_whole_run_cost_relative_to_ce(benchmark, dataset: str) -> None:
    result = benchmark.pedantic(whole_run_costs, args=(dataset,), rounds=1, iterations=1)
    for label, r in result.items():
        benchmark.extra_info[f"{label}_ratio"] = r["ratio"]
        benchmark.extra_info[f"{label}_flop_ratio"] = r["flops"]
    print("\n" + format_table(dataset, result))
    for label in (m for m, (_, where) in LIMITS.items() if dataset in where):
        r = result[label]
        assert r["ratio"] <= r["limit"], f"{label} costs {r['ratio']:.2f}x CE (limit {r['limit']:.2f}x)"


if __name__ == "__main__":
    torch.set_num_threads(1)
    args = sys.argv[1:]
    chosen = METHODS
    if "--methods" in args:
        at = args.index("--methods")
        chosen, args = tuple(args[at + 1].split(",")), args[:at] + args[at + 2:]
    for name in args or ["digits", "mnist1d"]:
        print(format_table(name, whole_run_costs(name, methods=chosen)), flush=True)
