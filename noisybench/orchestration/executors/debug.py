"""The debug executor: submitit's in-process DebugExecutor, the same task objects as on Slurm,
and the first exception opens pdb instead of becoming a failed record."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import submitit

from noisybench.config import RunConfig
from noisybench.orchestration.executors.slurm import SlurmOptions, submit
from noisybench.orchestration.progress import ProgressFn
from noisybench.orchestration.runner import RunRecord
from noisybench.store import ResultStore


def run_debug(runs: Sequence[RunConfig], out_dir: str | Path, retry_failed: bool = False,
              progress: ProgressFn | None = None) -> list[RunRecord]:
    """Run through submitit's in-process DebugExecutor: same task objects as on Slurm, and the
    first exception opens pdb instead of becoming a failed record."""
    executor = submitit.DebugExecutor(folder=ResultStore(out_dir).executor_folder("debug"))
    options = SlurmOptions(runs_per_task=1)
    submission = submit(executor, runs, out_dir, options, retry_failed, raise_errors=True)
    records: list[RunRecord] = []
    for job in submission.jobs:
        for record in job.result():
            records.append(record)
            if progress:
                progress(record, len(records), len(runs))
    return records
