"""Every environment variable noisybench reads: its type, range, default and meaning, in one place.

Code reads a variable through :func:`get` (never ``os.environ`` directly), which validates it and
raises a one-line :class:`~noisybench.errors.ConfigError` naming the variable and the fix.
``noisybench run`` calls :func:`check_environment` before it writes anything, so a bad value never
fails halfway through a grid. The documentation's table of variables (``docs/environment.md``) is
:func:`markdown_table`, written by ``python docs/gen.py`` (``tests/test_envvars.py`` keeps them in sync).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisybench.errors import ConfigError

#: Largest number of seconds a duration variable takes (a week; a timer cannot wait for ever).
MAX_SECONDS = 7 * 24 * 3600.0


@dataclass(frozen=True)
class EnvVar:
    """One environment variable.

    ``kind`` is ``seconds`` (a finite number in ``[minimum, MAX_SECONDS]``), ``path`` (one folder)
    or ``paths`` (folders separated by ``os.pathsep``, each an existing directory).
    """

    name: str
    kind: str
    default: Any
    meaning: str
    minimum: float = 0.0
    example: str = ""

    def read(self) -> Any:
        """The validated value (the default when unset or empty)."""
        raw = os.environ.get(self.name, "")
        if not raw.strip():
            return str(Path(self.default).expanduser()) if self.kind == "path" and self.default else self.default
        if self.kind == "seconds":
            return self._seconds(raw)
        if "\0" in raw:
            raise ConfigError(f"${self.name} contains a NUL byte; {self._fix()}")
        if self.kind == "path":
            return str(Path(raw.strip()).expanduser())
        return self._folders(raw)

    def _seconds(self, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"${self.name}={raw!r} is not a number of seconds; {self._fix()}") from None
        if not math.isfinite(value) or not self.minimum <= value <= MAX_SECONDS:
            raise ConfigError(f"${self.name}={raw!r} is out of range; {self._fix()}")
        return value

    def _folders(self, raw: str) -> tuple[str, ...]:
        folders = []
        for part in raw.split(os.pathsep):
            if not part.strip():
                continue
            path = Path(part.strip()).expanduser()
            if not path.is_dir():
                raise ConfigError(f"${self.name}: {part!r} is not an existing folder; {self._fix()}")
            folders.append(str(path.resolve()))
        return tuple(dict.fromkeys(folders))

    def _fix(self) -> str:
        """How to set the variable right (one clause)."""
        if self.kind == "seconds":
            return (f"set it to e.g. {self.example or f'{self.default:g}'} (seconds, {self.minimum:g} to "
                    f"{MAX_SECONDS:g}) or unset it (default {self.default:g})")
        if self.kind == "paths":
            return f"list existing folders separated by {os.pathsep!r} (e.g. {self.example}) or unset it"
        return f"set it to a folder (e.g. {self.example}) or unset it"

    def values(self) -> str:
        """The accepted values, for the documentation's table."""
        if self.kind == "seconds":
            return f"seconds, {self.minimum:g} to {MAX_SECONDS:g}"
        if self.kind == "paths":
            return f"folders separated by `{os.pathsep}`"
        return "a folder"

    def shown_default(self) -> str:
        """The default, for the documentation's table."""
        if self.default is None or self.default == ():
            return "none"
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


VARIABLES: dict[str, EnvVar] = {v.name: v for v in (
    EnvVar("NOISYBENCH_DATA", "path", None,
           "Data root of real datasets (CIFAR, CIFAR-N, ANIMAL-10N, Clothing1M, WebVision) for `run`, `plan` and "
           "`data check`. `--data-dir` takes precedence, then the grid's `[data] root`, then this variable.",
           example="/data/noisy"),
    EnvVar("NOISYBENCH_CACHE", "path", "~/.cache/noisybench",
           "Where generated datasets (MNIST-1D, the ANIMAL-10N index) are cached.", example="/scratch/nb-cache"),
    EnvVar("NOISYBENCH_PLUGINS", "paths", (),
           "Folders of local plugins (methods, datasets, noise models, architectures), loaded by every command "
           "as a grid's `[plugins] paths` are.", example="~/my_methods"),
    EnvVar("NOISYBENCH_CHECKPOINT_SECONDS", "seconds", 5.0,
           "Least seconds between two checkpoints of a run (0: after every epoch). A crash loses at most this "
           "much work; a Ctrl-C still checkpoints the epoch it stops at.", ),
    EnvVar("NOISYBENCH_STOP_GRACE", "seconds", 5.0,
           "After the first Ctrl-C, seconds to wait for runs in flight to reach an epoch end before they are "
           "killed (they then resume from their previous checkpoint).", example="60"),
    EnvVar("NOISYBENCH_CLAIM_TTL", "seconds", 300.0,
           "Seconds without a heartbeat after which another driver or job may take over a run's claim (a "
           "holder on another host that hung or died). Heartbeats come every TTL/5 seconds, at most every 30.",
           minimum=5.0, example="600"),
)}


def get(name: str) -> Any:
    """The validated value of the declared variable ``name`` (raises :class:`ConfigError` when malformed)."""
    return VARIABLES[name].read()


def check_environment() -> None:
    """Validate every declared variable; the first malformed one raises :class:`ConfigError`."""
    for variable in VARIABLES.values():
        variable.read()


def markdown_table() -> str:
    """The documentation's table of environment variables (``docs/environment.md``)."""
    lines = ["| variable | values | default | meaning |", "|---|---|---|---|"]
    for v in VARIABLES.values():
        lines.append(f"| `{v.name}` | {v.values()} | {v.shown_default()} | {v.meaning} |")
    return "\n".join(lines) + "\n"
