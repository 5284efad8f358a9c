"""Small file helpers anyone may use: atomic writes, JSON, safe checkpoint loading.

Every write goes to a temporary name in the target's folder and is renamed into place, so a
crash or kill leaves either the old file or the new one, never half of one. Nothing here knows
the results layout (that is :mod:`noisybench.store`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename).

    The file's permissions follow the umask, as any tool's files do (0644 under umask 022, 0664
    under 002, so a group that shares a results folder can read it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new temporary file beside ``path`` (mode 0666 less the umask; ``mkstemp`` would make it 0600)."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (NaN written as ``NaN``)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=json_default) + "\n").encode())


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` ``array`` to ``path`` atomically (no pickles)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def torch_load_weights(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers, never code."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)


def read_json(path: str | Path) -> Any:
    """Read JSON; raise ``ValueError`` naming the file when it is corrupt."""
    try:
        with open(path, encoding="utf-8") as handle:  # not Path.read_text: this reads every record of a store
            return json.loads(handle.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt JSON in {path}: {exc}") from None


def json_default(obj: Any) -> Any:
    """JSON fallback for numpy scalars and arrays and paths."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
