"""Scale: planning a 10,000-run grid and ``status`` over a store of 10,000 results, each < 2 s.

Run with ``python -m pytest benchmarks/bench_scale.py --benchmark-enable`` (the store is built
synthetically: realistic result records, no training). Without ``--benchmark-enable`` each
benchmark runs once; the < 2 s checks use the best of three timed calls either way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from noisybench.config import load_grid
from noisybench.orchestration.runner import pending_runs
from noisybench.plan import expand_grid
from noisybench.store import ResultStore, try_claim
from noisybench.store.status import store_status

LIMIT_S = 2.0
RATES = [round(0.05 * i, 2) for i in range(1, 11)]
GRID = f"""
name = "scale"
[grid]
datasets = ["blobs"]
methods = ["ce", "gce"]
noise = {json.dumps([f"sym:{r}" for r in RATES])}
seeds = {list(range(500))}
[train]
epochs = 30
"""


def _record(config: dict[str, Any], index: int) -> dict[str, Any]:
    failed = index % 50 == 0
    base = {"run_id": config["run_id"], "config": config, "host": "node01", "pid": 1000 + index,
            "slurm_job": f"77_{index % 1000}", "resumed_from_epoch": 0, "wall_time": 12.5,
            "finished_at": "2026-01-01T00:00:00+00:00"}
    if failed:
        return {**base, "status": "failed", "reason": "NonFiniteLossError: training loss became nan in epoch 3",
                "traceback": "Traceback (most recent call last):\n" + "  File ...\n" * 15}
    metrics = {"val_selected": 80.0 + index % 7, "val_best_epoch": 20, "last": 79.5, "mean_last_k": 79.8,
               "best_on_test": 81.0, "best_on_test_epoch": 22, "epochs_run": 30, "train_time": 10.1}
    noise = {"spec": config["noise"], "nominal_rate": 0.2, "actual_rate": 0.2, "sha256": "ab" * 32,
             "transition_matrix": [[0.8 if i == j else 0.05 for j in range(5)] for i in range(5)]}
    return {**base, "status": "done", "metrics": metrics, "noise": noise}


@pytest.fixture(scope="module")
def scale_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A grid file of 10,000 runs and a store where 9,000 have results (2% of them failed),
    200 are claimed by a live process and the rest never started."""
    root = tmp_path_factory.mktemp("scale")
    grid_path = root / "scale.toml"
    grid_path.write_text(GRID)
    runs = expand_grid(load_grid(grid_path))
    assert len(runs) == 10_000
    out = root / "out"
    store = ResultStore(out)
    store.record_plan("scale", {r.run_id: r.label() for r in runs})
    template = root / "template"  # one complete run folder (config, noise artifacts, history) copied 9,000 times
    ResultStore(template).write_start({"run_id": "t"}, {})
    ResultStore(template).write_noise("t", {"sha256": "ab" * 32}, np.zeros(8, dtype=np.int64))
    ResultStore(template).write_history("t", [{"epoch": 0, "val_acc": 80.0, "test_acc": 80.0}])
    for index, run in enumerate(runs[:9000]):
        shutil.copytree(ResultStore(template).run_dir("t"), store.run_dir(run.run_id))
        store.write_result(_record(run.to_dict(), index))
    held = [try_claim(out, run.run_id) for run in runs[9000:9200]]
    for claim in held:
        claim._stop.set()  # keep the files, stop the heartbeat threads
    return grid_path, out


def _best_of(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def test_plan_10k_runs(benchmark: Any, scale_store: tuple[Path, Path]) -> None:
    grid_path, out = scale_store

    def plan() -> list:
        return pending_runs(expand_grid(load_grid(grid_path)), ResultStore(out))

    todo = benchmark(plan)
    assert len(todo) == 1000
    seconds, _ = _best_of(plan)
    print(f"\nplan 10,000 runs (expand + ids + skip 9,000 finished): {seconds:.3f} s")
    assert seconds < LIMIT_S


def test_status_10k_results(benchmark: Any, scale_store: tuple[Path, Path]) -> None:
    _, out = scale_store
    status = benchmark(store_status, out)
    assert status.counts() == {"done": 8820, "stale": 0, "running": 200, "queued": 0, "failed": 180, "pending": 800}
    seconds, _ = _best_of(lambda: store_status(out))
    print(f"\nstatus over 10,000 runs (9,000 results): {seconds:.3f} s")
    assert seconds < LIMIT_S


def test_status_command_10k(scale_store: tuple[Path, Path]) -> None:
    """The whole ``noisybench status`` process, interpreter start and imports included."""
    _, out = scale_store
    command = [sys.executable, "-m", "noisybench.cli", "status", str(out)]
    seconds, proc = _best_of(lambda: subprocess.run(command, capture_output=True, text=True, timeout=60))
    assert proc.returncode == 0 and proc.stdout.startswith("done: 8820  stale: 0  running: 200")
    print(f"\n`noisybench status` process over 10,000 runs: {seconds:.3f} s")
    assert seconds < LIMIT_S
