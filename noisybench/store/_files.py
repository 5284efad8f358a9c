"""Writing and probing the store's files: one-line errors for failed writes, existence that tells
"absent" from "not this user's to see"."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from noisybench.errors import NoisybenchError
from noisybench.io import atomic_write_json


class StoreWriteError(NoisybenchError):
    """A file of the store could not be written (disk full, quota exceeded, permissions): the run is not at
    fault, records no failure and is redone by a rerun of the same command."""


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into a one-line :class:`StoreWriteError` naming it."""
    try:
        yield
    except OSError as exc:
        raise StoreWriteError(write_problem(path, exc)) from None


def write_problem(path: Path, exc: OSError) -> str:
    """One line: what stopped writing ``path``, and the fix."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        return (f"{what}: cannot write {path}; finished runs are kept; free some space (or choose another --out) "
                "and rerun the same command to do the rest")
    return (f"cannot write {path}: {exc.strerror or exc}; finished runs are kept; fix the folder's permissions "
            "(or choose another --out) and rerun the same command")


def write_json(path: Path, obj: Any) -> None:
    """:func:`noisybench.io.atomic_write_json`, failing with a :class:`StoreWriteError`."""
    with writing(path):
        atomic_write_json(path, obj)


def exists(path: str | Path) -> bool:
    """Whether ``path`` exists; True when this user may not look (the reader then says so)."""
    try:
        os.stat(path)
    except PermissionError:
        return True
    except OSError:
        return False
    return True
