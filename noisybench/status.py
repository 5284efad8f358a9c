"""The state of every run of a results directory, from the store alone (no driver needed).

States: ``done`` and ``failed`` (a final record exists), ``running`` (a live claim), ``queued``
(in a Slurm job that squeue still lists), ``pending`` (planned but none of the above: not yet
started, or interrupted; a rerun does it). Planned runs come from ``<out>/plans/*.json``, which
``noisybench run`` writes before it starts anything.
"""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from noisybench.claims import DEFAULT_TTL, holder_info, read_claims
from noisybench.config import RunConfig
from noisybench.store import RESULT, ResultStore, atomic_write_json

PLANS = "plans"
STATES = ("done", "running", "queued", "failed", "pending")


def record_plan(out_dir: str | Path, grid_name: str, runs: Sequence[RunConfig]) -> None:
    """Write ``<out>/plans/<grid>.json``: every planned run id with a short label."""
    plan = {"grid": grid_name, "runs": {r.run_id: r.label() for r in runs}}
    atomic_write_json(Path(out_dir) / PLANS / f"{grid_name}.json", plan)


@dataclass
class StoreStatus:
    """Per-state run ids, plus failure reasons, claim holders and labels."""

    states: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in STATES})
    reasons: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Number of runs in each state."""
        return {state: len(ids) for state, ids in self.states.items()}

    def render(self, show: Sequence[str] = ("failed", "running")) -> str:
        """A count line, then one line per run in the ``show`` states (with reason or holder)."""
        lines = ["  ".join(f"{state}: {n}" for state, n in self.counts().items())]
        for state in show:
            for run_id in sorted(self.states[state]):
                label = self.labels.get(run_id, "")
                lines.append(f"{state:<8}{run_id}  {label}  {self.reasons.get(run_id, '')}".rstrip())
        return "\n".join(lines) + "\n"


def _planned(out: Path) -> dict[str, str]:
    labels: dict[str, str] = {}
    for path in sorted((out / PLANS).glob("*.json")):
        try:
            labels.update(json.loads(path.read_text()).get("runs", {}))
        except (OSError, ValueError):
            continue
    return labels


def _final_state(path: Path) -> tuple[str, str] | None:
    try:
        with open(path, "rb") as handle:
            record = json.loads(handle.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "pending", "corrupt result.json (will be rerun)"
    return record.get("status", "failed"), record.get("reason") or ""


def store_status(out_dir: str | Path, query_slurm: bool = True, ttl: float = DEFAULT_TTL) -> StoreStatus:
    """Classify every planned or started run of ``out_dir`` (see the module docstring)."""
    out = Path(out_dir)
    result = StoreStatus(labels=_planned(out))
    run_ids = set(result.labels) | set(ResultStore(out).run_ids())
    claims = read_claims(out)
    me = holder_info()
    queued = _queued_runs(out) if query_slurm else set()
    for run_id in run_ids:
        final = _final_state(out / "runs" / run_id / RESULT)
        claim = claims.get(run_id)
        if final is not None and final[0] != "pending":
            state, reason = final
        elif claim is not None and not claim.stale(ttl, me):
            state, reason = "running", claim.describe()
        elif run_id in queued:
            state, reason = "queued", f"Slurm job {queued[run_id]}"
        elif claim is not None:
            state, reason = "pending", f"interrupted (stale claim: {claim.describe()})"
        else:
            state, reason = "pending", (final[1] if final else "")
        result.states.setdefault(state, []).append(run_id)
        if reason:
            result.reasons[run_id] = reason
    return result


def _queued_runs(out: Path) -> dict[str, str]:
    """Run id -> Slurm task id, for tasks of recorded submissions that squeue still lists."""
    jobs_dir = out / "jobs"
    if not jobs_dir.is_dir() or shutil.which("squeue") is None:
        return {}
    tasks: dict[str, list[str]] = {}
    for path in jobs_dir.glob("*.json"):
        try:
            tasks.update(json.loads(path.read_text()).get("tasks", {}))
        except (OSError, ValueError):
            continue
    if not tasks:
        return {}
    try:
        user = getpass.getuser()
        out_text = subprocess.run(["squeue", "-h", "-r", "-u", user, "-o", "%i"], capture_output=True,
                                  text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    active = set(out_text.split())
    return {run_id: task for task, ids in tasks.items() if task in active for run_id in ids}
