"""Deciding what a rerun of a grid trains: missing runs, damaged runs, stale runs and forced reruns.

``noisybench run`` plans every run, then asks :func:`select_runs` which of them to train. A
finished run counts as finished only when its stored fingerprint (:mod:`noisybench.orchestration.fingerprint`)
is the one the current code and inputs give; otherwise it is **stale**: named, not counted, and
rerun only with ``--rerun-stale`` (``--keep-stale`` keeps it, and reports mark it). Corrupt runs
and runs chosen with ``--force`` are moved aside in the store (never deleted) and trained again;
a run is moved only under its claim, so one that another live process is training is skipped as
busy. A run whose record this user may not read (another user's) is named and left alone.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from noisybench.config import RunConfig
from noisybench.errors import ConfigError
from noisybench.orchestration.runner import classify
from noisybench.store import ClaimInfo, ResultStore, try_claim


@dataclass(frozen=True)
class Selection:
    """``--force`` with ``--methods``/``--datasets``/``--noise`` patterns (None: every value)."""

    methods: Sequence[str] | None = None
    datasets: Sequence[str] | None = None
    noises: Sequence[str] | None = None

    def matches(self, run: RunConfig) -> bool:
        """Whether ``run`` is selected."""
        return all(_any_match(value, patterns) for value, patterns in
                   ((run.method, self.methods), (run.dataset.name, self.datasets), (run.noise, self.noises)))


def _any_match(value: str, patterns: Sequence[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass
class Decision:
    """What to train, and what the finished part of the grid holds."""

    train: list[RunConfig] = field(default_factory=list)
    finished: int = 0
    stale: list[RunConfig] = field(default_factory=list)
    current: set[str] = field(default_factory=set)  # run ids whose stored results belong in the grid's table


def select_runs(runs: list[RunConfig], store: ResultStore, expected: dict[str, str], *, retry_failed: bool = False,
                rerun_stale: bool = False, keep_stale: bool = False, force: Selection | None = None,
                log: Callable[[str], None] = print) -> Decision:
    """Decide what to train; moves corrupt, stale (with ``rerun_stale``) and forced runs' folders aside."""
    if rerun_stale and keep_stale:
        raise ConfigError("--rerun-stale and --keep-stale contradict each other; choose one")
    pending = classify(runs, store, retry_failed, expected)
    if pending.unreadable:
        shown = "; ".join(problem for _, problem in pending.unreadable[:2])
        more = f" (and {len(pending.unreadable) - 2} more)" if len(pending.unreadable) > 2 else ""
        log(f"{len(pending.unreadable)} run(s) left alone, their records unreadable by this user: {shown}{more}")
    skipped = {r.run_id for r, _ in pending.unreadable}
    for run, problem in pending.corrupt:
        where = _retire(store, run, log, "corrupt run")
        if where is not None:
            log(f"corrupt run {run.run_id} ({run.label()}): {problem}; moved to {where}, rerunning")
    train = list(pending.todo)
    stale_ids = {r.run_id for r in pending.stale}
    if pending.stale:
        log(_describe_stale(pending.stale, rerun_stale, keep_stale))
        if rerun_stale:
            train += [r for r in pending.stale if _retire(store, r, log, "stale run") is not None]
    if force is not None:
        if not any(force.matches(r) for r in runs):
            raise ConfigError("--force: the selection (--methods/--datasets/--noise) matches no run of the grid")
        queued = {r.run_id for r in train} | skipped
        chosen = [r for r in runs if force.matches(r) and r.run_id not in queued and store.has_result(r.run_id)]
        moved = [r for r in chosen if _retire(store, r, log, "--force: run") is not None]
        log(f"--force: rerunning {len(moved)} finished run(s) of the selection (old folders kept aside)")
        train += moved
    trained = {r.run_id for r in train}
    current = {r.run_id for r in runs
               if r.run_id not in skipped and (r.run_id not in stale_ids or keep_stale or r.run_id in trained)}
    finished = len(current - trained)
    return Decision(train, finished, [] if rerun_stale else [r for r in pending.stale if r.run_id not in trained],
                    current)


def _retire(store: ResultStore, run: RunConfig, log: Callable[[str], None], what: str) -> str | None:
    """Move ``run``'s folder aside under its claim; None (and a log line) when a live process holds the run."""
    held = try_claim(store.root, run.run_id)
    if isinstance(held, ClaimInfo):
        log(f"{what} {run.run_id} ({run.label()}) is being trained by {held.describe()}: not moved, skipped")
        return None
    with held:
        return str(store.retire(run.run_id))


def _describe_stale(stale: list[RunConfig], rerun: bool, keep: bool) -> str:
    groups = Counter((r.method, r.dataset.name) for r in stale)
    where = ", ".join(f"{m} on {d} ({n})" for (m, d), n in sorted(groups.items()))
    head = (f"{len(stale)} finished run(s) are stale: their code or input files changed since they ran "
            f"[{where}]")
    if rerun:
        return f"{head}; rerunning them (--rerun-stale; old folders kept aside)"
    if keep:
        return f"{head}; kept as finished (--keep-stale) and marked stale in reports"
    return f"{head}; not counted as finished. Rerun them with --rerun-stale, or keep them with --keep-stale"
