"""``benchmarks/gpu_smoke.py`` runs end to end on the CPU (tiny sizes), so it is known to work before it meets a GPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_smoke.py"


@pytest.mark.slow
def test_gpu_smoke_runs_on_the_cpu_and_passes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    out = tmp_path / "smoke.json"
    assert smoke.main(["--device", "cpu", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["failures"] == []
    assert {r["method"] for r in results["methods"]} >= {"ce", "gce", "elr", "alr", "dividemix"}
    assert {(r["compile"], r["amp"]) for r in results["options"]} == {(c, a) for c in (False, "eager")
                                                                       for a in (False, True)}
    assert all(r["identical"] for r in results["resume"])
    assert all(r["max_per_step"] == 0 for r in results["syncs"])
    loops = [r["loop"] for r in results["throughput"]]
    assert loops[0].startswith("dataloader fp32") and len(loops) == 7
    assert all(r["img_s"] > 0 for r in results["throughput"])
    checks = {r["check"]: r for r in results["extensions"]}
    assert all(r["ok"] for r in checks.values()), [c for c, r in checks.items() if not r["ok"]]
    assert {f"network {n}" for n in smoke.NEW_ARCHS} <= set(checks)
    assert {"policy weak", "policy autoaugment-cutout16", "policy randaugment-3-5", "policy keras-shift"} <= set(checks)
    assert all(r["syncs"] == 0 for c, r in checks.items() if c.startswith("policy"))
    run = checks["run under every new recipe key, resumed across its phase boundary"]
    assert run["lr"] == pytest.approx([0.05, 0.0255, 1e-3, 5e-4])  # warm restarts, then Adam's linear tail
