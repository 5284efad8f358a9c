"""The results store: the one owner of a results directory's layout.

Layout of an output directory (nothing outside this package names these files)::

    <out>/runs/<run_id>/config.json       resolved run configuration (written first)
                        environment.json  versions, host, git commit, device
                        noise.json        noise summary (rates, transition counts, sha256)
                        noisy_labels.npy  the realised noisy training labels (full train set)
                        history.json      per-epoch records, rewritten at every checkpoint and at the end
                        checkpoint.pt     state after the last checkpointed epoch (removed when the run finishes)
                        result.json       final record; its presence means "finished"
                        traceback.txt     where a failed run's exception came from (failed runs only)
    <out>/plans/<grid>.json               planned run ids of each grid, with their fingerprints (written first)
    <out>/retired/<run_id>.<n>/           folders moved aside (corrupt, stale or forced reruns), never deleted
    <out>/jobs/<array id>.json            Slurm submissions: task id -> run ids
    <out>/claims/<run_id>.<generation>    atomic claims on runs (:mod:`noisybench.store.claims`)
    <out>/slurm/, <out>/debug/            submitit's job folders
    <out>/cache/<name>.json               derived texts (e.g. the closing leaderboard) with the digest of their inputs

Every file is written atomically (:mod:`noisybench.io`). One policy for damaged runs: a final
record that cannot be read, is not a JSON object, lacks its status, names another run, or (when
done) lacks its metrics or its noise artifacts counts as **corrupt**; a corrupt run is unfinished
everywhere (``run`` moves its folder aside and redoes it, ``status`` lists it as pending with the
reason, reports list it among their warnings) and nothing raises on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from noisybench.errors import NoisybenchError
from noisybench.io import (
    atomic_save_npy,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    read_json,
    torch_load_weights,
)
from noisybench.records import field_problem
from noisybench.store.claims import Claim, ClaimInfo, ClaimLostError, slurm_job_id, try_claim

_RUNS, _PLANS, _JOBS, _RETIRED, _CACHE = "runs", "plans", "jobs", "retired", "cache"
_RESULT, _CONFIG, _ENVIRONMENT = "result.json", "config.json", "environment.json"
_NOISE, _LABELS, _HISTORY, _CHECKPOINT = "noise.json", "noisy_labels.npy", "history.json", "checkpoint.pt"
_TRACEBACK = "traceback.txt"
#: Final statuses a valid record may carry.
FINAL_STATUSES = ("done", "failed")
RecordState = Literal["done", "failed", "corrupt", "missing"]


@dataclass(frozen=True)
class StoredRecord:
    """The final record of one run as found on disk: its state, the record, and what is wrong."""

    run_id: str
    state: RecordState
    record: dict[str, Any] | None = None
    problem: str = ""


def check_record(run_id: str, record: Any) -> str:
    """What is wrong with a final record ("" when it is valid)."""
    if not isinstance(record, dict):
        return f"result is a JSON {type(record).__name__}, not an object"
    if record.get("status") not in FINAL_STATUSES:
        return f"result has status {record.get('status')!r}, expected done or failed"
    if record.get("run_id") != run_id:
        return f"result names run {record.get('run_id')!r}, not its folder's {run_id!r}"
    if not isinstance(record.get("config"), dict):
        return "result has no config"
    if record["status"] == "done" and not isinstance(record.get("metrics"), dict):
        return "done result has no metrics"
    return field_problem(record)  # valid JSON with a field of the wrong type (a string seed) is corrupt too


class Checkpoint:
    """The per-epoch checkpoint of one run (written atomically, read with ``weights_only``)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def exists(self) -> bool:
        """Whether a checkpoint was written."""
        return self._path.exists()

    def save(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint with ``state``."""
        atomic_torch_save(state, self._path)

    def load(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The saved state; None when missing, or unreadable (with a warning: the run starts over)."""
        if not self._path.exists():
            return None
        try:
            return torch_load_weights(self._path, map_location)
        except Exception as exc:  # corrupt or foreign file: start over rather than crash
            warnings.warn(f"ignoring unreadable checkpoint {self._path}: {exc}", stacklevel=2)
            return None

    def remove(self) -> None:
        """Delete the checkpoint (the run finished)."""
        self._path.unlink(missing_ok=True)


class ResultStore:
    """A results directory (see the module docstring for its layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs = self.root / _RUNS

    # ---------------------------------------------------------------- the directory
    def ensure_writable(self) -> None:
        """Create the directory or raise a clear error naming it."""
        try:
            self.runs.mkdir(parents=True, exist_ok=True)
            probe = self.runs / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise NoisybenchError(
                f"output directory {str(self.root)!r} is not writable ({exc.strerror}); "
                "choose another with --out DIR"
            ) from None

    def exists(self) -> bool:
        """Whether ``root`` looks like a results directory (runs or plans recorded)."""
        return (self.root / _RUNS).is_dir() or (self.root / _PLANS).is_dir()

    def run_dir(self, run_id: str) -> Path:
        """The folder of run ``run_id`` (for messages and users; write through this class)."""
        return self.runs / run_id

    def run_ids(self) -> Iterator[str]:
        """Ids of every run folder."""
        if self.runs.is_dir():
            for entry in os.scandir(self.runs):
                if entry.is_dir() and not entry.name.startswith("."):
                    yield entry.name

    def has_started(self, run_id: str) -> bool:
        """Whether the folder holds a config or a final record (an empty stray folder does not count)."""
        folder = self.run_dir(run_id)
        return (folder / _CONFIG).exists() or (folder / _RESULT).exists()

    # ---------------------------------------------------------------- final records
    def has_result(self, run_id: str) -> bool:
        """Whether a final record file exists (a stat, not a parse: fast on big grids)."""
        return (self.run_dir(run_id) / _RESULT).exists()

    def stored(self, run_id: str) -> StoredRecord:
        """The final record of ``run_id`` under the store's one policy for damaged files."""
        path = self.run_dir(run_id) / _RESULT
        try:
            record = read_json(path)
        except FileNotFoundError:
            return StoredRecord(run_id, "missing")
        except (ValueError, OSError) as exc:
            return StoredRecord(run_id, "corrupt", None, f"unreadable {path}: {exc}")
        problem = check_record(run_id, record) or self._missing_artifacts(run_id, record)
        if problem:
            return StoredRecord(run_id, "corrupt", None, f"{path}: {problem}")
        return StoredRecord(run_id, record["status"], record)

    def _missing_artifacts(self, run_id: str, record: dict[str, Any]) -> str:
        if record["status"] != "done":
            return ""
        folder = self.run_dir(run_id)
        missing = [name for name in (_CONFIG, _NOISE, _LABELS, _HISTORY) if not (folder / name).is_file()]
        return f"done run lacks {', '.join(missing)}" if missing else ""

    def result(self, run_id: str) -> dict[str, Any] | None:
        """The valid final record of ``run_id``, or None (unfinished or corrupt)."""
        return self.stored(run_id).record

    def status(self, run_id: str) -> str | None:
        """``done``, ``failed`` or None (not finished, or corrupt)."""
        record = self.result(run_id)
        return record.get("status") if record else None

    def iter_stored(self) -> Iterator[StoredRecord]:
        """Every run folder that holds a final record file, valid or corrupt, sorted by id."""
        for run_id in sorted(self.run_ids()):
            stored = self.stored(run_id)
            if stored.state != "missing":
                yield stored

    def iter_results(self) -> Iterator[dict[str, Any]]:
        """Every valid final record (corrupt ones are listed by :meth:`corrupt`)."""
        for stored in self.iter_stored():
            if stored.record is not None:
                yield stored.record

    def corrupt(self) -> list[StoredRecord]:
        """Runs whose final record is damaged, with what is wrong."""
        return [s for s in self.iter_stored() if s.state == "corrupt"]

    # ---------------------------------------------------------------- writing a run
    def write_start(self, config: dict[str, Any], environment: dict[str, Any]) -> None:
        """Create the run folder with its config and environment."""
        folder = self.run_dir(config["run_id"])
        atomic_write_json(folder / _CONFIG, config)
        atomic_write_json(folder / _ENVIRONMENT, environment)

    def write_noise(self, run_id: str, summary: dict[str, Any], labels: np.ndarray) -> None:
        """Store the noise artifact of a run."""
        folder = self.run_dir(run_id)
        atomic_save_npy(folder / _LABELS, np.asarray(labels, dtype=np.int64))
        atomic_write_json(folder / _NOISE, summary)

    def write_history(self, run_id: str, history: list[dict[str, Any]]) -> None:
        """Rewrite the per-epoch history."""
        atomic_write_json(self.run_dir(run_id) / _HISTORY, history)

    def write_result(self, record: dict[str, Any]) -> None:
        """Write the final record (last, so its presence means finished); a success drops an old traceback."""
        atomic_write_json(self.run_dir(record["run_id"]) / _RESULT, record)
        if record.get("status") == "done":
            (self.run_dir(record["run_id"]) / _TRACEBACK).unlink(missing_ok=True)

    def write_traceback(self, run_id: str, text: str) -> None:
        """Keep a failed run's traceback in its own file (:meth:`traceback_path`)."""
        atomic_write_bytes(self.run_dir(run_id) / _TRACEBACK, text.encode())

    def traceback_path(self, run_id: str) -> Path | None:
        """The traceback file of a failed run, or None."""
        path = self.run_dir(run_id) / _TRACEBACK
        return path if path.is_file() else None

    def checkpoint(self, run_id: str) -> Checkpoint:
        """The checkpoint file of ``run_id``."""
        return Checkpoint(self.run_dir(run_id) / _CHECKPOINT)

    def history(self, run_id: str) -> list[dict[str, Any]]:
        """The per-epoch history of ``run_id`` ([] if missing or corrupt)."""
        path = self.run_dir(run_id) / _HISTORY
        try:
            history = read_json(path)
        except FileNotFoundError:
            return []
        except (ValueError, OSError) as exc:
            warnings.warn(f"skipping corrupt history {path}: {exc}", stacklevel=2)
            return []
        return history if isinstance(history, list) else []

    def retire(self, run_id: str) -> Path | None:
        """Move the folder of ``run_id`` aside (never delete it) so the run can be redone; return where."""
        folder = self.run_dir(run_id)
        if not folder.exists():
            return None
        target_dir = self.root / _RETIRED
        target_dir.mkdir(parents=True, exist_ok=True)
        n = 0
        while (target_dir / f"{run_id}.{n}").exists():
            n += 1
        os.replace(folder, target_dir / f"{run_id}.{n}")
        return target_dir / f"{run_id}.{n}"

    # ---------------------------------------------------------------- plans and submissions
    def record_plan(self, grid_name: str, labels: dict[str, str], fingerprints: dict[str, str] | None = None,
                    source: str | None = None) -> None:
        """Write the planned run ids of ``grid_name`` (run id -> short label), their fingerprint digests
        and the grid file."""
        atomic_write_json(self.root / _PLANS / f"{grid_name}.json",
                          {"grid": grid_name, "runs": labels, "fingerprints": fingerprints or {}, "source": source})

    def plan_sources(self) -> list[str]:
        """The grid files recorded with the plans (for the commands ``status`` suggests)."""
        sources = []
        for path in sorted((self.root / _PLANS).glob("*.json")):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                source = read_json(path).get("source")
                if isinstance(source, str):
                    sources.append(source)
        return sources

    def planned(self) -> dict[str, str]:
        """Run id -> label of every recorded plan (unreadable plan files are skipped)."""
        return self._merge_json_tables(_PLANS, "runs")

    def planned_fingerprints(self) -> dict[str, str]:
        """Run id -> the fingerprint digest its latest plan expects."""
        return self._merge_json_tables(_PLANS, "fingerprints")

    def record_submission(self, array_id: str, tasks: dict[str, list[str]], options: dict[str, Any],
                          submitted_at: float) -> None:
        """Write a Slurm submission: task id -> run ids, with the options used."""
        atomic_write_json(self.root / _JOBS / f"{array_id}.json",
                          {"array_id": array_id, "tasks": tasks, "options": options, "submitted_at": submitted_at})

    def submitted_tasks(self) -> dict[str, list[str]]:
        """Task id -> run ids of every recorded Slurm submission."""
        return self._merge_json_tables(_JOBS, "tasks")

    def executor_folder(self, kind: str) -> Path:
        """Where an executor keeps its own job files (``slurm``, ``debug``)."""
        return self.root / kind

    def records_digest(self, run_ids: list[str]) -> str:
        """sha256 over the final records of ``run_ids`` as stored (bytes; a missing one counts as missing) and the
        fingerprint digests the store's plans hold for them: equal digests, equal records."""
        h = hashlib.sha256()
        planned = self.planned_fingerprints()
        for run_id in run_ids:
            try:
                data = (self.run_dir(run_id) / _RESULT).read_bytes()
            except OSError:
                data = b"missing"
            h.update(f"{run_id}:{len(data)}:{planned.get(run_id, '')}:".encode() + data)
        return h.hexdigest()

    def cached_text(self, name: str, key: str) -> str | None:
        """The text last cached as ``name``, if it was made from inputs with digest ``key`` (else None)."""
        try:
            entry = read_json(self.root / _CACHE / f"{name}.json")
        except (OSError, ValueError):
            return None
        if isinstance(entry, dict) and entry.get("key") == key and isinstance(entry.get("text"), str):
            return entry["text"]
        return None

    def cache_text(self, name: str, key: str, text: str) -> None:
        """Keep ``text`` as ``name``, made from inputs with digest ``key`` (replaces the previous one)."""
        atomic_write_json(self.root / _CACHE / f"{name}.json", {"key": key, "text": text})

    def _merge_json_tables(self, folder: str, key: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for path in sorted((self.root / folder).glob("*.json"), key=_mtime):  # the newest file wins
            with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
                merged.update(read_json(path).get(key, {}))
        return merged


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


__all__ = ["FINAL_STATUSES", "Checkpoint", "Claim", "ClaimInfo", "ClaimLostError", "ResultStore", "StoredRecord",
           "check_record", "slurm_job_id", "try_claim"]
