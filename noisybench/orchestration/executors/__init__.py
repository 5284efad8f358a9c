"""Executors: where the runs of a plan are trained.

``local`` (:mod:`~noisybench.orchestration.executors.local`, a pool of long-lived worker processes),
``slurm`` (:mod:`~noisybench.orchestration.executors.slurm`, job arrays through submitit) and ``debug``
(:mod:`~noisybench.orchestration.executors.debug`, in-process with pdb). Each takes an :class:`ExecRequest`
and trains every run through :func:`noisybench.orchestration.runner.execute_run`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noisybench.config import RunConfig
from noisybench.errors import ConfigError, suggest
from noisybench.orchestration.executors.slurm_options import SlurmOptions, parse_sbatch_flags
from noisybench.orchestration.progress import ProgressFn
from noisybench.orchestration.runner import RunRecord

EXECUTORS = ("local", "slurm", "debug")


@dataclass(frozen=True)
class ExecRequest:
    """What to run and how: the one argument of :func:`execute_plan`."""

    executor: str
    runs: Sequence[RunConfig]
    out_dir: str | Path
    grid_name: str
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    workers: int = 1
    retry_failed: bool = False
    detach: bool = False
    progress: ProgressFn | None = None
    log: Callable[[str], None] = print
    pool: Any = None  # local: a started executors.local.WorkerPool to use (warmed up while planning)


def execute_plan(request: ExecRequest) -> list[RunRecord] | None:
    """Run ``request.runs`` with the named executor.

    Returns the records, or None when ``detach`` submitted Slurm jobs and returned at once.
    """
    if request.executor == "local":
        from noisybench.orchestration.executors.local import run_local

        workers = min(request.workers, max(1, len(request.runs)))
        request.log(f"local executor: {workers} worker(s) -> {request.out_dir}")
        return run_local(list(request.runs), request.out_dir, workers, request.retry_failed, request.progress,
                         request.pool)
    if request.executor == "debug":
        from noisybench.orchestration.executors.debug import run_debug

        request.log(f"debug executor: in-process, errors open pdb -> {request.out_dir}")
        return run_debug(request.runs, request.out_dir, request.retry_failed, request.progress)
    if request.executor == "slurm":
        from noisybench.orchestration.executors.slurm import run_slurm

        return run_slurm(request)
    raise ConfigError(f"unknown executor {request.executor!r}.{suggest(request.executor, EXECUTORS)}")


__all__ = ["EXECUTORS", "ExecRequest", "SlurmOptions", "execute_plan", "parse_sbatch_flags"]
