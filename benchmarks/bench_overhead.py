"""Per-run fixed cost: what a run costs beyond its epochs (target <= 0.15 s).

Twelve quick-grid runs (digits, CE: every noise, three seeds) go through the local executor in this process,
into a fresh store, as a grid runs them: claim, data and noise, networks, fingerprint, checkpoints, history,
noise artifacts and the final record. The fixed cost is (wall time - the runs' summed epoch times) / runs.
One run first warms the process up, as a pool worker's first run does (imports, first-call allocations).

Run: ``pytest benchmarks/bench_overhead.py --benchmark-enable -s``.
"""

from __future__ import annotations

import time
from pathlib import Path

from noisybench.config import load_grid
from noisybench.executors.local import run_local
from noisybench.plan import expand_grid

GRID = Path(__file__).with_name("quick.toml")
LIMIT_S = 0.15


def digits_ce_runs() -> list:
    """The quick grid's digits CE runs (12)."""
    return [r for r in expand_grid(load_grid(GRID)) if r.dataset.name == "digits" and r.method == "ce"]


def fixed_cost(out: Path) -> dict[str, float]:
    """Seconds per run outside its epochs, over the digits CE runs of the quick grid."""
    runs = digits_ce_runs()
    run_local(runs[:1], out / "warm-up")
    start = time.perf_counter()
    records = run_local(runs, out / "grid")
    wall = time.perf_counter() - start
    assert [r["status"] for r in records] == ["done"] * len(runs)
    epochs = sum(r["metrics"]["train_time"] for r in records)
    return {"runs": len(runs), "wall_s": wall, "epochs_s": epochs, "fixed_s": (wall - epochs) / len(runs)}


def test_per_run_fixed_cost(benchmark, tmp_path: Path) -> None:
    result = benchmark.pedantic(fixed_cost, args=(tmp_path,), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(f"\n{result['runs']} digits CE runs: wall {result['wall_s']:.2f} s, epochs {result['epochs_s']:.2f} s, "
          f"fixed cost {result['fixed_s']:.3f} s per run")
    assert result["fixed_s"] <= LIMIT_S, f"fixed cost {result['fixed_s']:.3f} s per run (limit {LIMIT_S} s)"
