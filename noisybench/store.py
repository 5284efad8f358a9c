"""The results store: one self-describing folder per run, written atomically.

Layout of an output directory::

    <out>/runs/<run_id>/config.json       resolved run configuration (written first)
                        environment.json  versions, host, git commit, device
                        noise.json        noise summary (rates, transition counts, sha256)
                        noisy_labels.npy  the realised noisy training labels (full train set)
                        history.json      per-epoch records, rewritten every epoch
                        checkpoint.pt     last epoch's state (removed when the run finishes)
                        result.json       final record; its presence means "finished"

Every file is written to a temporary name in the same folder and renamed into place, so a
crash or kill leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from noisybench.errors import NoisybenchError

RESULT = "result.json"
CONFIG = "config.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress_oserror():
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (NaN written as ``NaN``)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n").encode())


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def safe_torch_load(path: Path, map_location: Any = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True``; a corrupt file warns and returns None."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt or foreign file: start over rather than crash
        warnings.warn(f"ignoring unreadable checkpoint {path}: {exc}", stacklevel=2)
        return None


def read_json(path: Path) -> Any:
    """Read JSON; raise ``ValueError`` naming the file when it is corrupt."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt JSON in {path}: {exc}") from None


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *_: Any) -> bool:
        return kind is not None and issubclass(kind, OSError)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class ResultStore:
    """A results directory (see the module docstring for its layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"

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

    def run_dir(self, run_id: str) -> Path:
        """The folder of run ``run_id``."""
        return self.runs / run_id

    def result(self, run_id: str) -> dict[str, Any] | None:
        """The final record of ``run_id``, or None if unfinished or unreadable."""
        path = self.run_dir(run_id) / RESULT
        if not path.exists():
            return None
        try:
            return read_json(path)
        except (ValueError, OSError) as exc:
            warnings.warn(f"skipping corrupt result {path}: {exc}", stacklevel=2)
            return None

    def status(self, run_id: str) -> str | None:
        """``done``, ``failed`` or None (not finished)."""
        record = self.result(run_id)
        return record.get("status") if record else None

    def run_ids(self) -> Iterator[str]:
        """Ids of every run folder."""
        if self.runs.is_dir():
            for entry in os.scandir(self.runs):
                if entry.is_dir() and not entry.name.startswith("."):
                    yield entry.name

    def iter_results(self) -> Iterator[dict[str, Any]]:
        """Every readable final record; corrupt files are skipped with a warning."""
        for run_id in sorted(self.run_ids()):
            record = self.result(run_id)
            if record is not None:
                yield record

    def write_start(self, config: dict[str, Any], environment: dict[str, Any]) -> Path:
        """Create the run folder with its config and environment; return the folder."""
        folder = self.run_dir(config["run_id"])
        atomic_write_json(folder / CONFIG, config)
        atomic_write_json(folder / "environment.json", environment)
        return folder

    def write_noise(self, run_id: str, summary: dict[str, Any], labels: np.ndarray) -> None:
        """Store the noise artifact of a run."""
        folder = self.run_dir(run_id)
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(labels, dtype=np.int64), allow_pickle=False)
        atomic_write_bytes(folder / "noisy_labels.npy", buffer.getvalue())
        atomic_write_json(folder / "noise.json", summary)

    def write_history(self, run_id: str, history: list[dict[str, Any]]) -> None:
        """Rewrite the per-epoch history."""
        atomic_write_json(self.run_dir(run_id) / "history.json", history)

    def write_result(self, record: dict[str, Any]) -> None:
        """Write the final record (last, so its presence means finished)."""
        atomic_write_json(self.run_dir(record["run_id"]) / RESULT, record)

    def history(self, run_id: str) -> list[dict[str, Any]]:
        """The per-epoch history of ``run_id`` ([] if missing or corrupt)."""
        path = self.run_dir(run_id) / "history.json"
        try:
            return read_json(path) if path.exists() else []
        except (ValueError, OSError) as exc:
            warnings.warn(f"skipping corrupt history {path}: {exc}", stacklevel=2)
            return []
