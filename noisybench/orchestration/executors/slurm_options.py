"""Slurm options of a grid and the command line: the ``[slurm]`` table, sbatch time limits and ``--sbatch`` flags.

Kept apart from :mod:`noisybench.orchestration.executors.slurm` so that reading them (every ``noisybench run``)
does not import submitit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from noisybench.errors import ConfigError, suggest
from noisybench.validate import check_fields

MAX_ARRAY = 1000  # Slurm's default MaxArraySize is 1001 (task ids 0..1000)


@dataclass
class SlurmOptions:
    """Resources of one array task (= one run at a time) and how runs are packed into tasks.

    ``time`` is the task's time limit in minutes (None: no limit); ``runs_per_task`` 0 means automatic (enough
    tasks to keep ``array_parallelism`` tasks busy four times over, grouped by dataset);
    ``sbatch`` holds extra ``#SBATCH`` flags (``{"constraint": "volta"}`` -> ``--constraint=volta``);
    ``setup`` shell lines run before the job (``module load ...``).
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: int | None = 60
    cpus: int = 1
    gpus: int = 0
    mem_gb: float | None = None
    array_parallelism: int = 64
    runs_per_task: int = 0
    max_requeues: int = 3
    sbatch: dict[str, Any] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)

    @classmethod
    def from_sources(cls, table: dict[str, Any], overrides: dict[str, Any], where: str = "[slurm]") -> SlurmOptions:
        """Grid-file ``[slurm]`` table, then non-None CLI ``overrides``; unknown keys refused."""
        names = [f.name for f in fields(cls)]
        for key in table:
            if key not in names:
                raise ConfigError(f"{where}: unknown key {key!r}.{suggest(key, names)} Known keys: {', '.join(names)}")
        values = {**table, **{k: v for k, v in overrides.items() if v is not None}}
        if "time" in values:
            values["time"] = parse_time_limit(values["time"], where)
        check_fields(values, cls, where)  # cpus = "x" fails here, not in a comparison
        options = cls(**values)
        options.validate(where)
        return options

    def validate(self, where: str = "[slurm]") -> None:
        """Check ranges; raise :class:`ConfigError` naming the key."""
        checks = [
            (self.time is None or self.time >= 1, "time must be at least 1 minute"),
            (self.cpus >= 1, "cpus must be >= 1"),
            (self.gpus >= 0, "gpus must be >= 0"), (self.mem_gb is None or self.mem_gb > 0, "mem_gb must be > 0"),
            (self.array_parallelism >= 1, "array_parallelism must be >= 1"),
            (self.runs_per_task >= 0, "runs_per_task must be >= 0 (0 = automatic)"),
            (self.max_requeues >= 0, "max_requeues must be >= 0"),
            (isinstance(self.sbatch, dict), "sbatch must be a table of extra sbatch flags"),
            (isinstance(self.setup, list), "setup must be a list of shell lines"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{where}: {message}")


#: sbatch's words for "no time limit".
UNLIMITED_WORDS = ("UNLIMITED", "INFINITE")
_TIME_FORMS = (  # sbatch --time: the six forms of `man sbatch`, as (regex, [days, hours, minutes, seconds] groups)
    (re.compile(r"(\d+)"), ("m",)),
    (re.compile(r"(\d+):(\d+)"), ("m", "s")),
    (re.compile(r"(\d+):(\d+):(\d+)"), ("h", "m", "s")),
    (re.compile(r"(\d+)-(\d+)"), ("d", "h")),
    (re.compile(r"(\d+)-(\d+):(\d+)"), ("d", "h", "m")),
    (re.compile(r"(\d+)-(\d+):(\d+):(\d+)"), ("d", "h", "m", "s")),
)
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_time_limit(value: Any, where: str = "[slurm]") -> int | None:
    """A task's time limit in whole minutes, read as sbatch reads ``--time`` (None: no limit).

    The six forms of ``man sbatch``: ``minutes``, ``minutes:seconds``, ``hours:minutes:seconds``,
    ``days-hours``, ``days-hours:minutes``, ``days-hours:minutes:seconds``; seconds round up to a
    whole minute as Slurm does; ``0``, ``UNLIMITED`` and ``INFINITE`` mean no limit. So ``"30:00"``
    is 30 minutes, ``"1:30"`` 2 and ``"2-12"`` 3,600.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{where}: time {value!r} is not a time limit; e.g. 120, 2:00:00 or 1-00:00:00")
    text = str(value).strip()
    if text.upper() in UNLIMITED_WORDS:
        return None
    for pattern, units in _TIME_FORMS:
        match = pattern.fullmatch(text)
        if match:
            seconds = sum(int(v) * _SECONDS[u] for v, u in zip(match.groups(), units))
            return None if seconds == 0 else math.ceil(seconds / 60)
    raise ConfigError(f"{where}: time {value!r} is not an sbatch time limit (minutes, MM:SS, HH:MM:SS, D-HH, "
                      "D-HH:MM, D-HH:MM:SS or UNLIMITED); e.g. 120, 2:00:00 or 1-00:00:00")


def parse_sbatch_flags(items: Sequence[str]) -> dict[str, str]:
    """``["constraint=volta", "exclusive"]`` -> ``{"constraint": "volta", "exclusive": True}``."""
    flags: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.lstrip("-").partition("=")
        if not key:
            raise ConfigError(f"--sbatch {item!r}: expected KEY=VALUE, e.g. --sbatch constraint=volta")
        flags[key.replace("-", "_")] = value if sep else True
    return flags
