"""The quick leaderboard as a new user runs it: its wall time (<= 5 min on 2 cores), a conclusive closing table
(the Friedman test over settings rejects at alpha = 0.05 and at least one pair of methods differs significantly)
and a rerun of the finished grid (<= 2 s, everything loaded from the store).

Both go through the CLI in a fresh process, exactly as the README's first command:
``noisybench run benchmarks/quick.toml --out DIR --workers 2``. Absolute times, not ratios: run this file
alone on an otherwise idle machine (``pytest benchmarks/bench_quick.py --benchmark-enable -s``). It takes
the grid's time plus a few seconds; the figure printed is the one docs/speed.md quotes, with the machine.
``NOISYBENCH_QUICK_STORE=DIR`` times the rerun against an existing finished quick grid instead (the wall-time
test then skips).
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from noisybench.config import load_grid
from noisybench.plan import expand_grid

GRID = Path(__file__).with_name("quick.toml")
GRID_LIMIT_S = 300.0
RERUN_LIMIT_S = 2.0
WORKERS = 2


def _cli(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "noisybench.cli", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    return elapsed, done


def machine() -> str:
    """The machine the times belong to, in words."""
    return f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), {platform.system()}"


@pytest.fixture(scope="module")
def quick_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, str]:
    """The quick grid run once from scratch: (its results folder, its wall time, its closing table)."""
    if os.environ.get("NOISYBENCH_QUICK_STORE"):
        out = Path(os.environ["NOISYBENCH_QUICK_STORE"])
        return out, float("nan"), _cli("run", str(GRID), "--out", str(out))[1].stdout
    out = tmp_path_factory.mktemp("quick") / "out"
    seconds, done = _cli("run", str(GRID), "--out", str(out), "--workers", str(WORKERS))
    assert "Leaderboard" in done.stdout
    return out, seconds, done.stdout


def friedman_p(table: str) -> float:
    """The Friedman p-value the closing table reports (``p = <0.001`` reads as 0.001)."""
    found = re.search(r"Friedman χ² = [\d.]+ \(p = <?([\d.]+)\)", table)
    assert found, "the closing table reports no Friedman test"
    return float(found.group(1))


def significant_pairs(table: str) -> list[str]:
    """Pairs beyond the Nemenyi critical difference, and Wilcoxon-Holm pairs marked significant."""
    nemenyi = re.search(r"pairs whose average ranks differ by more: (.+)", table)
    pairs = [p.strip() for p in nemenyi.group(1).rstrip(".").split(",")] if nemenyi else []
    return pairs + re.findall(r"Wilcoxon (.+?): p = .*\(significant;", table)


@pytest.mark.slow
def test_quick_grid_wall_time(benchmark, quick_grid: tuple[Path, float, str]) -> None:
    out, seconds, _ = benchmark.pedantic(lambda: quick_grid, rounds=1, iterations=1)
    if seconds != seconds:
        pytest.skip("NOISYBENCH_QUICK_STORE: timing a rerun of an existing grid only")
    benchmark.extra_info.update(wall_s=seconds, machine=machine(), workers=WORKERS)
    runs = len(expand_grid(load_grid(GRID)))
    print(f"\nquick grid ({runs} runs, {WORKERS} workers) on {machine()}: {seconds:.0f} s "
          f"({int(seconds // 60)} min {seconds % 60:.0f} s)")
    assert len(list((out / "runs").iterdir())) == runs
    assert seconds <= GRID_LIMIT_S, f"the quick grid took {seconds:.0f} s (limit {GRID_LIMIT_S:.0f} s)"


@pytest.mark.slow
def test_closing_table_is_conclusive(quick_grid: tuple[Path, float, str]) -> None:
    table = quick_grid[2]
    print("\n" + table[table.index("Leaderboard"):])
    assert friedman_p(table) < 0.05, "the Friedman test over settings does not reject at alpha = 0.05"
    assert significant_pairs(table), "no pair of methods differs significantly"


@pytest.mark.slow
def test_rerun_of_the_finished_quick_grid(benchmark, quick_grid: tuple[Path, float, str]) -> None:
    out = quick_grid[0]
    _cli("run", str(GRID), "--out", str(out))  # the first rerun may write the table's cache

    def rerun() -> list[float]:
        return [_cli("run", str(GRID), "--out", str(out))[0] for _ in range(3)]

    times = benchmark.pedantic(rerun, rounds=1, iterations=1)
    median = statistics.median(times)
    benchmark.extra_info.update(rerun_s=median, machine=machine())
    print(f"\nrerun of the finished quick grid: median {median:.2f} s of {[round(t, 2) for t in times]}")
    assert median <= RERUN_LIMIT_S, f"rerunning a finished grid took {median:.2f} s (limit {RERUN_LIMIT_S} s)"
