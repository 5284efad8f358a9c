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
                        attempts/<n>/     an earlier, failed attempt kept when the run was retried: its
                                          result.json, traceback.txt, history.json, environment.json
    <out>/plans/<grid>.json               planned run ids of each grid, with their fingerprints and grid file
                                          (written first; <grid>.<hash>.json for another grid file of the same name)
    <out>/retired/<run_id>.<n>/           folders moved aside (corrupt, stale or forced reruns), never deleted
    <out>/jobs/<array id>.json            Slurm submissions: task id -> run ids
    <out>/claims/<run_id>.<generation>    atomic claims on runs (:mod:`noisybench.store.claims`)
    <out>/slurm/, <out>/debug/            submitit's job folders
    <out>/cache/<name>.json               derived texts (e.g. the closing leaderboard) with the digest of their inputs

Every file is written atomically (:mod:`noisybench.io`), with the permissions the umask gives (a
group that shares a results folder reads it). A write that fails (disk full, quota, permissions)
raises :class:`StoreWriteError` naming the file. One policy for damaged runs: a final
record that cannot be parsed, is not a JSON object, lacks its status, names another run, or (when
done) lacks its metrics or its noise artifacts counts as **corrupt**; a corrupt run is unfinished
everywhere (``run`` moves its folder aside and redoes it, ``status`` lists it as pending with the
reason, reports list it among their warnings) and nothing raises on it. A final record this user
may not read (another user's file) is **unreadable**: named as such everywhere, never corrupt,
never moved aside and never redone.
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
from noisybench.io import atomic_save_npy, atomic_write_bytes, atomic_write_json, read_json
from noisybench.store._files import StoreWriteError, exists, write_json, write_problem, writing
from noisybench.store.checkpoint import CHECKPOINT_PARTS, Checkpoint, checkpoint_problem
from noisybench.store.claims import Claim, ClaimInfo, ClaimLostError, slurm_job_id, try_claim
from noisybench.store.records import field_problem

_RUNS, _PLANS, _JOBS, _RETIRED, _CACHE = "runs", "plans", "jobs", "retired", "cache"
_RESULT, _CONFIG, _ENVIRONMENT = "result.json", "config.json", "environment.json"
_NOISE, _LABELS, _HISTORY, _CHECKPOINT = "noise.json", "noisy_labels.npy", "history.json", "checkpoint.pt"
_TRACEBACK, _ATTEMPTS = "traceback.txt", "attempts"
#: Final statuses a valid record may carry.
FINAL_STATUSES = ("done", "failed")
RecordState = Literal["done", "failed", "corrupt", "unreadable", "missing"]
#: What a retried run's record keeps of each earlier attempt (beside the attempt's folder).
ATTEMPT_FIELDS = ("status", "reason", "raised_at", "finished_at", "wall_time", "host", "slurm_job",
                  "fingerprint_digest")


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
        folder = os.path.join(self.runs, run_id)  # plain strings: status asks this of every run folder
        return exists(os.path.join(folder, _CONFIG)) or exists(os.path.join(folder, _RESULT))

    # ---------------------------------------------------------------- final records
    def has_result(self, run_id: str) -> bool:
        """Whether a final record file exists (a stat, not a parse: fast on big grids; True when this user
        may not look, so that :meth:`stored` names the run unreadable)."""
        return exists(self.run_dir(run_id) / _RESULT)

    def stored(self, run_id: str) -> StoredRecord:
        """The final record of ``run_id`` under the store's one policy for damaged files."""
        folder = os.path.join(self.runs, run_id)  # plain strings: this runs for every run of a plan
        path = os.path.join(folder, _RESULT)
        try:
            record = read_json(path)
        except FileNotFoundError:
            return StoredRecord(run_id, "missing")
        except PermissionError as exc:
            return StoredRecord(run_id, "unreadable", None,
                                f"{path}: unreadable by this user ({exc.strerror or exc}); its owner can share it "
                                "with `chmod -R g+rX` (and umask 002 for new files)")
        except (ValueError, OSError) as exc:
            return StoredRecord(run_id, "corrupt", None, f"unreadable {path}: {exc}")
        problem = check_record(run_id, record) or self._missing_artifacts(folder, record)
        if problem:
            return StoredRecord(run_id, "corrupt", None, f"{path}: {problem}")
        return StoredRecord(run_id, record["status"], record)

    @staticmethod
    def _missing_artifacts(folder: str, record: dict[str, Any]) -> str:
        if record["status"] != "done":
            return ""
        names = (_CONFIG, _NOISE, _LABELS, _HISTORY)
        try:  # one directory listing instead of four stats: this runs for every finished run of a plan
            present = {entry.name for entry in os.scandir(folder) if entry.is_file()}
        except OSError:  # a folder this user may enter but not list: stat each file, as before
            present = {name for name in names if os.path.isfile(os.path.join(folder, name))}
        missing = [name for name in names if name not in present]
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
        write_json(folder / _CONFIG, config)
        write_json(folder / _ENVIRONMENT, environment)

    def write_noise(self, run_id: str, summary: dict[str, Any], labels: np.ndarray) -> None:
        """Store the noise artifact of a run."""
        folder = self.run_dir(run_id)
        with writing(folder / _LABELS):
            atomic_save_npy(folder / _LABELS, np.asarray(labels, dtype=np.int64))
        write_json(folder / _NOISE, summary)

    def write_history(self, run_id: str, history: list[dict[str, Any]]) -> None:
        """Rewrite the per-epoch history."""
        write_json(self.run_dir(run_id) / _HISTORY, history)

    def write_result(self, record: dict[str, Any]) -> None:
        """Write the final record (last, so its presence means finished); a success drops an old traceback."""
        write_json(self.run_dir(record["run_id"]) / _RESULT, record)
        if record.get("status") == "done":
            with contextlib.suppress(OSError):
                (self.run_dir(record["run_id"]) / _TRACEBACK).unlink(missing_ok=True)

    def write_traceback(self, run_id: str, text: str) -> None:
        """Keep a failed run's traceback in its own file (:meth:`traceback_path`)."""
        path = self.run_dir(run_id) / _TRACEBACK
        with writing(path):
            atomic_write_bytes(path, text.encode())

    def archive_attempt(self, run_id: str) -> Path | None:
        """Before a failed run is retried: keep its attempt (final record, traceback, history, environment) in
        ``attempts/<n>/`` of its folder, and drop its checkpoint (a retry starts over: the code that made it
        may have changed). Returns the attempt's folder (None when the run has no final record)."""
        folder = self.run_dir(run_id)
        if not exists(folder / _RESULT):
            return None
        n = 1
        while exists(folder / _ATTEMPTS / str(n) / _RESULT):
            n += 1
        target = folder / _ATTEMPTS / str(n)
        with writing(target):
            self.checkpoint(run_id).remove()
            target.mkdir(parents=True, exist_ok=True)
            for name in (_ENVIRONMENT, _HISTORY, _TRACEBACK, _RESULT):  # the final record last: the commit point
                if (folder / name).exists():
                    os.replace(folder / name, target / name)
        return target

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        """The earlier attempts of ``run_id`` kept by :meth:`archive_attempt`, oldest first: the
        :data:`ATTEMPT_FIELDS` of each final record and ``folder``, the attempt's folder within the run's."""
        root = self.run_dir(run_id) / _ATTEMPTS
        try:
            numbers = sorted(int(p.name) for p in root.iterdir() if p.name.isdigit())
        except OSError:
            return []
        out = []
        for n in numbers:
            try:
                record = read_json(root / str(n) / _RESULT)
            except (OSError, ValueError):
                continue
            if isinstance(record, dict):
                kept = {k: record[k] for k in ATTEMPT_FIELDS if record.get(k) is not None}
                out.append({**kept, "folder": f"{_ATTEMPTS}/{n}"})
        return out

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
        except PermissionError as exc:
            warnings.warn(f"skipping history {path}: unreadable by this user ({exc.strerror})", stacklevel=2)
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
        with writing(target_dir / f"{run_id}.{n}"):
            os.replace(folder, target_dir / f"{run_id}.{n}")
        return target_dir / f"{run_id}.{n}"

    # ---------------------------------------------------------------- plans and submissions
    def record_plan(self, grid_name: str, labels: dict[str, str], fingerprints: dict[str, str] | None = None,
                    source: str | None = None, source_digest: str | None = None) -> list[str]:
        """Write the planned run ids of ``grid_name`` (run id -> short label), their fingerprint digests
        and the grid file (``source``, whose text has sha256 ``source_digest``).

        Each grid file keeps its own plan: another grid file of the same name gets ``<grid>.<hash>.json``
        beside the first one's, so neither plan is lost; the plan of a grid file that no longer exists (it was
        moved) is replaced. Returns the other grid files of this name planned here whose text differs from
        this one's: two grids sharing one folder, usually by mistake (the caller warns).
        """
        plans = self._plans_named(grid_name)
        mine = ([p for p, plan in plans.items() if plan.get("source") == source]
                or [p for p, plan in plans.items() if not _still_there(plan.get("source"))])
        path = mine[0] if mine else self.root / _PLANS / f"{grid_name}.json"
        if not mine and exists(path):
            path = path.with_name(f"{grid_name}.{hashlib.sha256(str(source).encode()).hexdigest()[:8]}.json")
        write_json(path, {"grid": grid_name, "runs": labels, "fingerprints": fingerprints or {},
                                 "source": source, "source_sha256": source_digest})
        return sorted({str(plan.get("source")) for p, plan in plans.items()
                       if p != path and _still_there(plan.get("source")) and
                       (source_digest is None or plan.get("source_sha256") != source_digest)})

    def _plans_named(self, grid_name: str) -> dict[Path, dict[str, Any]]:
        """The readable plan files of grid ``grid_name``."""
        found = {}
        for path in sorted((self.root / _PLANS).glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                plan = read_json(path)
                if isinstance(plan, dict) and plan.get("grid") == grid_name:
                    found[path] = plan
        return found

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
        write_json(self.root / _JOBS / f"{array_id}.json",
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


def _still_there(source: Any) -> bool:
    """Whether the grid file a plan names still exists (True when this user may not look)."""
    return isinstance(source, str) and exists(Path(source))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


__all__ = ["CHECKPOINT_PARTS", "FINAL_STATUSES", "Checkpoint", "Claim", "ClaimInfo", "ClaimLostError", "ResultStore",
           "StoreWriteError", "StoredRecord", "check_record", "checkpoint_problem", "slurm_job_id", "try_claim",
           "write_problem"]
