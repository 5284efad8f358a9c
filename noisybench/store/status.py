"""The state of every run of a results directory, from the store alone (no driver needed).

States: ``done`` and ``failed`` (a valid final record exists; a failed run stays failed whatever its
fingerprint), ``stale`` (a done record whose
fingerprint is not the one the latest plan expects: code or input files changed), ``running`` (a live claim),
``queued`` (in a Slurm job the scheduler still lists), ``pending`` (planned but none of the
above: not yet started, interrupted, or with a corrupt record; a rerun does it), and ``unreadable`` (a
final record this user may not read: another user's file; counted only when there is one). Planned runs
come from the plans that ``noisybench run`` records before it starts anything. Which tasks are
still queued is asked of the executor through ``queued`` (the store never runs a scheduler).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from noisybench.store import ResultStore
from noisybench.store.claims import holder_info, read_claims

STATES = ("done", "stale", "running", "queued", "failed", "pending")
#: States counted only when some run is in them.
RARE_STATES = ("unreadable",)
#: Given the recorded submissions (task id -> run ids), the run ids still queued, with their task id.
QueuedFn = Callable[[dict[str, list[str]]], dict[str, str]]


@dataclass
class StoreStatus:
    """Per-state run ids, plus failure reasons, claim holders and labels."""

    states: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in (*STATES, *RARE_STATES)})
    reasons: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    tracebacks: dict[str, str] = field(default_factory=dict)  # failed run -> its traceback file
    retry_command: str = ""  # how to rerun the failed runs

    def counts(self) -> dict[str, int]:
        """Number of runs in each state (the :data:`RARE_STATES` only when not zero)."""
        return {state: len(ids) for state, ids in self.states.items() if ids or state not in RARE_STATES}

    def render(self, show: Sequence[str] = ("failed", "running")) -> str:
        """A count line, then one line per run in the ``show`` states and in the :data:`RARE_STATES` (with
        reason or holder)."""
        lines = ["  ".join(f"{state}: {n}" for state, n in self.counts().items())]
        for state in (*show, *(s for s in RARE_STATES if s not in show)):
            for run_id in sorted(self.states[state]):
                label = self.labels.get(run_id, "")
                lines.append(f"{state:<8}{run_id}  {label}  {self.reasons.get(run_id, '')}".rstrip())
                if state == "failed" and run_id in self.tracebacks:
                    lines.append(f"{'':<8}traceback: {self.tracebacks[run_id]}")
        if self.states["failed"] and "failed" in show and self.retry_command:
            lines.append(f"rerun the failed runs after fixing them: {self.retry_command}")
        return "\n".join(lines) + "\n"


def store_status(out_dir: str | Path, queued: QueuedFn | None = None, ttl: float | None = None) -> StoreStatus:
    """Classify every planned or started run of ``out_dir`` (see the module docstring)."""
    from noisybench.orchestration.fingerprint import matches

    store = ResultStore(out_dir)
    result = StoreStatus(labels=store.planned())
    expected = store.planned_fingerprints()
    run_ids = set(result.labels) | {r for r in store.run_ids() if store.has_started(r)}
    claims = read_claims(out_dir)
    me = holder_info()
    waiting = queued(store.submitted_tasks()) if queued is not None else {}
    for run_id in run_ids:
        stored = store.stored(run_id)
        claim = claims.get(run_id)
        changed = run_id in expected and stored.record is not None and not matches(stored.record, expected[run_id])
        if stored.state == "unreadable":
            state, reason = "unreadable", stored.problem
        elif stored.state == "done" and changed:
            state, reason = "stale", "code or input files changed since it ran (run --rerun-stale or --keep-stale)"
        elif stored.record is not None:
            state, reason = stored.state, stored.record.get("reason") or ""
            if state == "failed":
                reason += f" (at {stored.record['raised_at']})" if stored.record.get("raised_at") else ""
                reason += "; the code changed since" if changed and stored.record.get("fingerprint_digest") else ""
                path = store.traceback_path(run_id)
                if path is not None:
                    result.tracebacks[run_id] = str(path)
        elif claim is not None and not claim.stale(ttl, me):
            state, reason = "running", claim.describe()
        elif run_id in waiting:
            state, reason = "queued", f"Slurm job {waiting[run_id]}"
        elif claim is not None:
            state, reason = "pending", f"interrupted (stale claim: {claim.describe()})"
        else:
            state, reason = "pending", (f"corrupt result (will be rerun): {stored.problem}" if stored.problem else "")
        result.states.setdefault(state, []).append(run_id)
        if reason:
            result.reasons[run_id] = reason
    result.retry_command = retry_command(store)
    return result


def retry_command(store: ResultStore) -> str:
    """``noisybench run GRID --out DIR --retry-failed`` with the grid file the plan recorded (else GRID.toml)."""
    sources = store.plan_sources()
    grid = shlex.quote(sources[0]) if len(sources) == 1 else "GRID.toml"
    return f"noisybench run {grid} --out {shlex.quote(str(store.root))} --retry-failed"
