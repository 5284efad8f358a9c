"""User-facing error types.

Every error a user can cause by bad input derives from :class:`NoisybenchError`; the CLI
prints its message and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NoisybenchError(Exception):
    """An error caused by bad input; its message names the input and the fix."""


class UnknownNameError(NoisybenchError, KeyError):
    """A name that is not in a registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(NoisybenchError, ValueError):
    """A malformed grid file, option or hyperparameter."""


class DataError(NoisybenchError):
    """A dataset that is missing, incomplete or inconsistent on disk."""


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite; the run fails with this reason."""


class CheckpointError(RuntimeError):
    """A checkpoint that loads but does not fit the run (wrong shapes, missing parts): it is discarded and the
    run starts over."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return a ``did you mean ...?`` hint for ``name`` among ``choices`` (or "")."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not close:
        lowered = name.lower()
        close = [c for c in choices if lowered in c.lower() or c.lower() in lowered][:n]
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def raised_at(exc: BaseException) -> str:
    """``FILE:LINE in FUNCTION`` of the innermost frame outside installed libraries (else the innermost)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if "site-packages" not in f.filename and "/lib/python3" not in f.filename]
    frame = (own or frames or [None])[-1]
    return f"{frame.filename}:{frame.lineno} in {frame.name}" if frame else ""
