"""Running one resolved configuration into the store: the unit of work of every executor.

:func:`execute_run` skips a finished run, resumes an interrupted one from its checkpoint,
records a failure with its reason instead of raising, and writes the final record last.
Executors (:mod:`noisybench.orchestration.executors`) decide where and how many of them run at once.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypedDict

from noisybench.config import RunConfig
from noisybench.envvars import get
from noisybench.errors import CheckpointError, raised_at
from noisybench.orchestration.interrupt import RunInterrupted, stop_requested
from noisybench.store import (
    Checkpoint,
    Claim,
    ClaimInfo,
    ClaimLostError,
    ResultStore,
    StoreWriteError,
    slurm_job_id,
    try_claim,
)

#: ``interrupted`` (stopped at an epoch end on Ctrl-C) and ``cancelled`` (not started) are never stored.
RunStatus = Literal["done", "failed", "running", "interrupted", "cancelled"]


class RunRecord(TypedDict, total=False):
    """What :func:`execute_run` returns and (for ``done`` / ``failed``) stores as the final record.

    ``running`` records are never stored: another process holds the run (``reason``, ``holder``).
    """

    run_id: str
    config: dict[str, Any]
    status: RunStatus
    reason: str
    metrics: dict[str, Any]
    noise: dict[str, Any]
    wall_time: float
    finished_at: str
    host: str
    pid: int
    slurm_job: str | None
    resumed_from_epoch: int
    runtime: dict[str, Any]
    raised_at: str
    holder: dict[str, Any]
    fingerprint: dict[str, Any]
    fingerprint_digest: str
    attempts: list[dict[str, Any]]


@lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Versions, host and git commit recorded with every run."""
    import numpy
    import torch

    env = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "hostname": socket.gethostname(), "torch": torch.__version__, "numpy": numpy.__version__,
        "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(), "git_commit": _git_commit(),
    }
    try:
        from importlib.metadata import version

        env["noisybench"] = version("noisybench")
    except Exception:
        env["noisybench"] = None
    return env


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def checkpoint_seconds() -> float:
    """Least seconds between two checkpoints of a run (``$NOISYBENCH_CHECKPOINT_SECONDS``, default 5; 0: every
    epoch). A run whose epochs take seconds would otherwise spend a large share of its time writing its
    state; a crash loses at most this much work, and a Ctrl-C still checkpoints the epoch it stops at."""
    return float(get("NOISYBENCH_CHECKPOINT_SECONDS"))


def execute_run(
    config: dict[str, Any] | RunConfig, out_dir: str | Path, retry_failed: bool = False,
    claim: bool = True, raise_errors: bool = False,
) -> RunRecord:
    """Run one configuration into ``out_dir`` and return its final record.

    A finished run is returned as stored. A failed one is rerun only with ``retry_failed``: its
    attempt is kept in its folder (:meth:`~noisybench.store.ResultStore.archive_attempt`), the
    retry starts over, and the new record lists the earlier attempts under ``attempts``.
    Exceptions inside training become a ``failed`` record with the reason (re-raised instead
    with ``raise_errors``, for debugging); a store that cannot be written (disk full) raises
    :class:`~noisybench.store.StoreWriteError` and records nothing. With ``claim`` (the default) the
    run is first claimed atomically in the store; when another live process holds it, nothing is
    trained and the returned record, not stored, has status ``running`` and the holder.
    """
    run = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    store = ResultStore(out_dir)
    previous = store.result(run.run_id)
    if previous and (previous.get("status") == "done" or not retry_failed):
        return previous
    if stop_requested():  # the grid is stopping: hand back without starting
        return {"run_id": run.run_id, "config": run.to_dict(), "status": "cancelled",
                "reason": "not started: the grid was interrupted"}
    if not claim:
        return _retry(run, store, previous, None, raise_errors)
    store.runs.mkdir(parents=True, exist_ok=True)
    held = try_claim(out_dir, run.run_id)
    if isinstance(held, ClaimInfo):
        return _busy_record(run, held)
    with held:
        latest = store.result(run.run_id)  # finished by another process before we claimed?
        if latest and (latest.get("status") == "done" or not retry_failed or latest != previous):
            return latest
        return _retry(run, store, latest, held, raise_errors)


def _retry(run: RunConfig, store: ResultStore, failed: dict[str, Any] | None, claim: Claim | None,
           raise_errors: bool) -> RunRecord:
    """Train ``run``, keeping the attempt of a ``failed`` record first."""
    if failed is not None:
        store.archive_attempt(run.run_id)
    return _train(run, store, claim, raise_errors)


def record_lost_run(config: dict[str, Any] | RunConfig, out_dir: str | Path, reason: str,
                    pid: int | None = None) -> RunRecord:
    """Record as failed a run whose process died under it (killed, out of memory, crashed), with ``reason``.

    Returns the stored record instead when the run finished before its process died, and a ``running``
    record (nothing written) when another live process holds it by now.
    """
    run = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    store = ResultStore(out_dir)
    held = try_claim(out_dir, run.run_id)  # the dead process's claim is stale: taken over at once
    if isinstance(held, ClaimInfo):
        return _busy_record(run, held)
    with held:
        latest = store.result(run.run_id)
        if latest is not None:  # it wrote its record before dying
            return latest
        record: RunRecord = {
            "run_id": run.run_id, "config": run.to_dict(), "status": "failed", "reason": reason,
            "host": socket.gethostname(), "pid": pid or 0, "slurm_job": slurm_job_id(),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        attempts = store.attempts(run.run_id)
        if attempts:
            record["attempts"] = attempts
        store.write_result(dict(record))
        return record


def _busy_record(run: RunConfig, holder: ClaimInfo) -> RunRecord:
    return {"run_id": run.run_id, "config": run.to_dict(), "status": "running",
            "reason": f"claimed by {holder.describe()}", "holder": holder.holder}


def _train(run: RunConfig, store: ResultStore, claim: Claim | None, raise_errors: bool) -> RunRecord:
    from noisybench.orchestration.fingerprint import digest, fingerprint
    from noisybench.plugins import load_plugin_folders
    from noisybench.trainer import Trainer

    store.write_start(run.to_dict(), environment())
    checkpoint = store.checkpoint(run.run_id)
    start = time.perf_counter()
    record: RunRecord = {"run_id": run.run_id, "config": run.to_dict(), "host": socket.gethostname(),
                         "pid": os.getpid(), "slurm_job": slurm_job_id(), "resumed_from_epoch": 0}
    attempts = store.attempts(run.run_id)
    if attempts:
        record["attempts"] = attempts

    def on_save(history: list[dict[str, Any]]) -> None:
        if claim is not None:
            claim.check()
        store.write_history(run.run_id, history)
        if stop_requested():  # Ctrl-C: this epoch's checkpoint is written, stop here
            raise RunInterrupted(f"stopped after epoch {history[-1]['epoch']}; resumes from its checkpoint")

    def trainer() -> Trainer:
        return Trainer(run, checkpoint=checkpoint, on_save=on_save, checkpoint_every=checkpoint_seconds(),
                       save_requested=stop_requested)

    try:
        load_plugin_folders(run.plugins)  # a pool worker or Slurm job loads the grid's local plugins
        record["fingerprint"] = fingerprint(run)
        record["fingerprint_digest"] = digest(record["fingerprint"])
        out, record["resumed_from_epoch"] = _run_trainer(trainer, checkpoint)
        store.write_history(run.run_id, out["history"])
        store.write_noise(run.run_id, out["noise"], out["noise_labels"])
        record.update(status="done", metrics=out["metrics"], noise=_noise_brief(out["noise"]), runtime=out["runtime"])
    except StoreWriteError:  # disk full or the like: not the run's fault, and nothing more can be written
        raise
    except ClaimLostError as exc:  # another process owns the run now: leave the store to it
        return {**record, "status": "running", "reason": str(exc)}
    except RunInterrupted as exc:  # not a result: the checkpoint stays and a rerun resumes
        return {**record, "status": "interrupted", "reason": str(exc)}
    except Exception as exc:  # recorded, never raised: the grid goes on
        if raise_errors:
            raise
        if stop_requested():  # e.g. a data-loader worker killed by the same Ctrl-C: not the run's fault
            return {**record, "status": "interrupted", "reason": f"stopped by the interrupt ({type(exc).__name__})"}
        record.update(status="failed", reason=f"{type(exc).__name__}: {exc}", raised_at=raised_at(exc))
        store.write_traceback(run.run_id, traceback.format_exc(limit=20))
    record["wall_time"] = time.perf_counter() - start
    record["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if claim is not None and not claim.owned():
        return {**record, "status": "running", "reason": "claim lost before the result was written"}
    store.write_result(dict(record))
    if record["status"] == "done":
        checkpoint.remove()
    return record


def _run_trainer(make: Callable[[], Any], checkpoint: Checkpoint) -> tuple[dict[str, Any], int]:
    """Train; a checkpoint that loads but does not fit the run is discarded and the run starts over. Returns
    the trainer's output and the number of epochs actually restored from the checkpoint."""
    trainer = make()
    try:
        out = trainer.run()
    except CheckpointError as exc:
        checkpoint.discard(f"ignoring checkpoint {checkpoint.path} that does not fit the run ({exc})")
        trainer = make()
        out = trainer.run()
    return out, trainer.resumed_from_epoch


def _noise_brief(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "transition_counts"}


def execute_runs(configs: list[dict[str, Any]], out_dir: str, retry_failed: bool = False,
                 raise_errors: bool = False) -> list[RunRecord]:
    """Run several configurations in this process (one array task, one pool task)."""
    return [execute_run(c, out_dir, retry_failed, raise_errors=raise_errors) for c in configs]


@dataclass
class Pending:
    """What a plan still needs: runs to train, finished runs whose fingerprint changed, damaged runs, and runs
    whose record this user may not read (left alone)."""

    todo: list[RunConfig] = field(default_factory=list)
    stale: list[RunConfig] = field(default_factory=list)
    corrupt: list[tuple[RunConfig, str]] = field(default_factory=list)
    unreadable: list[tuple[RunConfig, str]] = field(default_factory=list)


def classify(runs: Iterable[RunConfig], store: ResultStore, retry_failed: bool = False,
             expected: dict[str, str] | None = None) -> Pending:
    """Sort ``runs`` into what to train, what is stale (done, but its stored fingerprint digest
    is not ``expected[run_id]``), what is corrupt (to be moved aside and redone) and what this user may not
    read. A failed run is never stale: it stays failed, and ``retry_failed`` reruns it whatever its
    fingerprint (after a fix, the fingerprint has changed)."""
    from noisybench.orchestration.fingerprint import matches

    out = Pending()
    for run in runs:
        stored = store.stored(run.run_id)
        if stored.state == "missing":
            out.todo.append(run)
        elif stored.state == "unreadable":
            out.unreadable.append((run, stored.problem))
        elif stored.record is None:
            out.corrupt.append((run, stored.problem))
            out.todo.append(run)
        elif stored.state == "failed":  # failed, whatever its fingerprint: never stale, retried when asked
            if retry_failed:
                out.todo.append(run)
        elif expected is not None and not matches(stored.record, expected.get(run.run_id)):
            out.stale.append(run)
    return out


def pending_runs(runs: Iterable[RunConfig], store: ResultStore, retry_failed: bool = False) -> list[RunConfig]:
    """The runs without a valid final record (plus failed ones with ``retry_failed``); fingerprints unchecked."""
    return classify(runs, store, retry_failed).todo


