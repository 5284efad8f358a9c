"""A run's per-epoch checkpoint: written atomically, read with ``weights_only``, checked before use."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

from noisybench.io import atomic_torch_save, torch_load_weights
from noisybench.store._files import writing

#: The parts of a checkpoint the trainer restores, and the type each must have.
CHECKPOINT_PARTS = {"run_id": str, "history": list, "nets": list, "optimizers": list, "method": dict}


class Checkpoint:
    """The per-epoch checkpoint of one run (written atomically, read with ``weights_only``)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        """The checkpoint file (for messages)."""
        return self._path

    def exists(self) -> bool:
        """Whether a checkpoint was written."""
        return self._path.exists()

    def save(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint with ``state``."""
        with writing(self._path):
            atomic_torch_save(state, self._path)

    def load(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The saved state; None when missing, unreadable or malformed (then with a warning, and the file is
        removed: the run starts over)."""
        if not self._path.exists():
            return None
        try:
            state = torch_load_weights(self._path, map_location)
        except PermissionError as exc:  # another user's file: not ours to remove
            warnings.warn(f"ignoring checkpoint {self._path}: unreadable by this user ({exc.strerror})", stacklevel=2)
            return None
        except Exception as exc:  # corrupt or foreign file: start over rather than crash
            self.discard(f"ignoring unreadable checkpoint {self._path}: {exc}")
            return None
        problem = checkpoint_problem(state)
        if problem:
            self.discard(f"ignoring malformed checkpoint {self._path}: {problem}")
            return None
        return state

    def discard(self, why: str) -> None:
        """Warn ``why`` (the run starts over) and remove the checkpoint."""
        warnings.warn(f"{why}; the run starts over", stacklevel=3)
        with contextlib.suppress(OSError):
            self.remove()

    def remove(self) -> None:
        """Delete the checkpoint (the run finished)."""
        self._path.unlink(missing_ok=True)


def checkpoint_problem(state: Any) -> str:
    """What keeps ``state`` from being a checkpoint the trainer can restore ("" when it has every part)."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a dict"
    for key, kind in CHECKPOINT_PARTS.items():
        if key not in state:
            return f"lacks {key!r}"
        if not isinstance(state[key], kind):
            return f"{key!r} is a {type(state[key]).__name__}, not a {kind.__name__}"
    if not all(isinstance(row, dict) for row in state["history"]):
        return "'history' holds something other than epoch records"
    return ""
