"""Running a plan on Slurm (through submitit job arrays) or in-process for debugging.

Each array task is a :class:`RunBatch`: several runs executed one after the other in one
process (one interpreter start and one ``import torch`` for all of them). A batch is
submitit-checkpointable: on preemption or time-out submitit calls :meth:`RunBatch.checkpoint`,
requeues the job, and the new incarnation calls the batch again; finished runs are skipped and
the interrupted one resumes from its per-epoch checkpoint, so the final metrics are those of an
uninterrupted run. Runs are claimed atomically in the store, so a second driver or
a duplicate job never trains a run twice.

Every submission is recorded in the store (which runs each task holds), so ``noisybench status``
can tell queued runs from pending ones without the driver (:func:`queued_runs` asks squeue).
"""

from __future__ import annotations

import contextlib
import getpass
import io
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import submitit

from noisybench.config import RunConfig
from noisybench.errors import NoisybenchError
from noisybench.orchestration.executors.slurm_options import MAX_ARRAY as MAX_ARRAY
from noisybench.orchestration.executors.slurm_options import UNLIMITED_WORDS as UNLIMITED_WORDS
from noisybench.orchestration.executors.slurm_options import SlurmOptions as SlurmOptions
from noisybench.orchestration.executors.slurm_options import parse_sbatch_flags as parse_sbatch_flags
from noisybench.orchestration.executors.slurm_options import parse_time_limit as parse_time_limit
from noisybench.orchestration.progress import ProgressFn
from noisybench.orchestration.runner import RunRecord, execute_runs
from noisybench.store import ResultStore
from noisybench.store.status import store_status

if TYPE_CHECKING:
    from noisybench.orchestration.executors import ExecRequest

class RunBatch(submitit.helpers.Checkpointable):
    """One array task: run ``configs`` in order into ``out_dir`` (skip finished, resume, claim)."""

    def __init__(self, configs: list[dict[str, Any]], out_dir: str, retry_failed: bool = False,
                 threads: int = 1, raise_errors: bool = False) -> None:
        self.configs = configs
        self.out_dir = out_dir
        self.retry_failed = retry_failed
        self.threads = threads
        self.raise_errors = raise_errors

    def __call__(self) -> list[dict[str, Any]]:
        """Run the batch; returns one brief record per run."""
        os.environ["OMP_NUM_THREADS"] = str(self.threads)  # torch's own count comes from each run's recipe
        records = execute_runs(self.configs, self.out_dir, self.retry_failed, raise_errors=self.raise_errors)
        return [brief(r) for r in records]

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Requeue the same batch: the state lives in the store (results, per-run checkpoints)."""
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def brief(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its bulky parts (traceback), small enough to pass back through submitit."""
    return {k: v for k, v in record.items() if k != "traceback"}


def group_runs(runs: Sequence[RunConfig], runs_per_task: int, parallelism: int) -> list[list[RunConfig]]:
    """Pack runs into array tasks; runs of one dataset stay together (one load per process).

    ``runs_per_task`` 0 picks ``ceil(len(runs) / (4 * parallelism))``: tasks are long enough to
    amortise start-up yet numerous enough to balance load.
    """
    if not runs:
        return []
    per_task = runs_per_task or max(1, math.ceil(len(runs) / (4 * parallelism)))
    ordered = sorted(runs, key=lambda r: (r.dataset.name, str(r.dataset.to_dict()["params"])))
    return [list(ordered[i : i + per_task]) for i in range(0, len(ordered), per_task)]


def make_slurm_executor(out_dir: str | Path, options: SlurmOptions, name: str) -> submitit.SlurmExecutor:
    """A submitit Slurm executor whose logs go to the store's ``slurm/<job id>/`` folder."""
    folder = ResultStore(out_dir).executor_folder("slurm") / "%j"
    if shutil.which("srun") is None or shutil.which("sbatch") is None:
        raise NoisybenchError("--executor slurm: Slurm is not installed here (no sbatch or srun on PATH); run on a "
                              "cluster's login node, or use --executor local")
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=options.max_requeues)
    limit = options.time
    params: dict[str, Any] = {
        "job_name": f"nb-{name}", "time": "UNLIMITED" if limit is None else limit, "cpus_per_task": options.cpus,
        "array_parallelism": options.array_parallelism, "additional_parameters": dict(options.sbatch),
        "setup": list(options.setup), "signal_delay_s": 90 if limit is None else min(90, max(10, limit * 60 // 10)),
    }
    optional = {"partition": options.partition, "account": options.account, "qos": options.qos,
                "gpus_per_node": options.gpus or None,
                "mem": f"{options.mem_gb:g}GB" if options.mem_gb else None}
    params.update({k: v for k, v in optional.items() if v is not None})
    executor.update_parameters(**params)
    return executor


@dataclass
class Submission:
    """Jobs submitted for a plan: submitit jobs and the runs each one holds."""

    jobs: list[submitit.Job]
    groups: list[list[RunConfig]]

    @property
    def job_ids(self) -> list[str]:
        """``<array id>_<task>`` of every task."""
        return [job.job_id for job in self.jobs]


def submit(executor: submitit.Executor, runs: Sequence[RunConfig], out_dir: str | Path, options: SlurmOptions,
           retry_failed: bool = False, raise_errors: bool = False) -> Submission:
    """Submit ``runs`` as job arrays of :class:`RunBatch` tasks and record each array in the store.

    An ``sbatch`` that refuses a submission raises :class:`~noisybench.errors.NoisybenchError` with its
    message, on one line (the arrays submitted before it stay recorded).
    """
    groups = group_runs(runs, options.runs_per_task, options.array_parallelism)
    jobs: list[submitit.Job] = []
    for start in range(0, len(groups), MAX_ARRAY):
        chunk = groups[start : start + MAX_ARRAY]
        with _sbatch_errors(start // MAX_ARRAY), executor.batch():
            for group in chunk:
                batch = RunBatch([r.to_dict() for r in group], str(out_dir), retry_failed, options.cpus, raise_errors)
                jobs.append(executor.submit(batch))
        if not isinstance(executor, submitit.DebugExecutor):
            record_submission(out_dir, Submission(jobs[start:], chunk), asdict(options))
    return Submission(jobs, groups)


@contextlib.contextmanager
def _sbatch_errors(submitted: int) -> Iterator[None]:
    """sbatch's refusal as one line (submitit prints sbatch's stderr itself, then raises with it)."""
    echoed = io.StringIO()
    try:
        with contextlib.redirect_stderr(echoed):
            yield
    except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as exc:
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or "no message"
        before = f"; the {submitted} job array(s) submitted before it are recorded" if submitted else \
            "; nothing was submitted"
        raise NoisybenchError(f"sbatch failed: {message}{before}") from None
    except BaseException:
        sys.stderr.write(echoed.getvalue())
        raise
    sys.stderr.write(echoed.getvalue())


def record_submission(out_dir: str | Path, submission: Submission, options: dict[str, Any]) -> None:
    """Record in the store, per array job: task id -> run ids, with the options used."""
    by_array: dict[str, dict[str, list[str]]] = {}
    for job, group in zip(submission.jobs, submission.groups):
        by_array.setdefault(job.job_id.split("_")[0], {})[job.job_id] = [r.run_id for r in group]
    store = ResultStore(out_dir)
    for array_id, tasks in by_array.items():
        store.record_submission(array_id, tasks, options, time.time())


def wait(submission: Submission, out_dir: str | Path, progress: ProgressFn | None = None,
         poll: float = 10.0) -> list[dict[str, Any]]:
    """Wait for every task; return all records. A task that ended without results (cancelled,
    killed, failed outside training) gets a ``failed`` record for each run it left unfinished,
    with the Slurm state as the reason (``cancelled: Slurm job 12_3 CANCELLED by 0``)."""
    store = ResultStore(out_dir)
    records: list[dict[str, Any]] = []
    total = sum(len(g) for g in submission.groups)
    pending = list(zip(submission.jobs, submission.groups))
    delay = 0.5  # grows to ``poll``: quick for short test jobs, gentle on the scheduler later
    while pending:
        if pending and hasattr(pending[0][0], "watcher"):
            pending[0][0].watcher.update()  # one sacct call for every job
        still = []
        for job, group in pending:
            if not job.done():
                still.append((job, group))
                continue
            for record in _finish(job, group, store):
                records.append(record)
                if progress:
                    progress(record, len(records), total)
        delay = 0.5 if len(still) < len(pending) else min(poll, delay * 1.5)
        pending = still
        if pending:
            time.sleep(delay)
    return records


def _finish(job: submitit.Job, group: list[RunConfig], store: ResultStore) -> list[dict[str, Any]]:
    watcher = getattr(job, "watcher", None)
    state = watcher.get_state(job.job_id, mode="cache") if watcher else "UNKNOWN"
    returned: dict[str, dict[str, Any]] = {}
    problem = None
    if state.split(" ")[0] in KILLED and not _has_result_file(job):  # don't wait for a file that never comes
        problem = f"{'cancelled' if state.startswith('CANCELLED') else 'job ended'}: Slurm job {job.job_id} {state}"
    else:
        try:
            returned = {r["run_id"]: r for r in job.result()}
        except Exception as exc:  # failed outside execute_run, or lost
            state = watcher.get_state(job.job_id, mode="force") if watcher else "UNKNOWN"
            kind = "cancelled" if state.startswith("CANCELLED") else "job failed"
            detail = (str(exc).strip().splitlines() or [""])[-1][:300]
            problem = f"{kind}: Slurm job {job.job_id} {state}: {detail}"
    records = []
    for run in group:
        record = returned.get(run.run_id) or store.result(run.run_id)
        if record is None and problem is not None:
            record = {"run_id": run.run_id, "config": run.to_dict(), "status": "failed", "reason": problem,
                      "slurm_job": job.job_id, "slurm_state": state}
            store.write_result(record)
        records.append(record or {"run_id": run.run_id, "config": run.to_dict(), "status": "failed",
                                  "reason": "the job ended without a result"})
    return records


KILLED = {"CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


def _has_result_file(job: submitit.Job) -> bool:
    try:
        return job.paths.result_pickle.exists()
    except AttributeError:
        return False


def active_runs(out_dir: str | Path) -> set[str]:
    """Runs of ``out_dir`` that a live process holds or a Slurm job still in the queue will run."""
    states = store_status(out_dir, queued=queued_runs).states
    return set(states["queued"]) | set(states["running"])


def queued_runs(tasks: dict[str, list[str]]) -> dict[str, str]:
    """Run id -> task id for the recorded ``tasks`` (task id -> run ids) that squeue still lists."""
    if not tasks or shutil.which("squeue") is None:
        return {}
    try:
        user = getpass.getuser()
        out_text = subprocess.run(["squeue", "-h", "-r", "-u", user, "-o", "%i"], capture_output=True,
                                  text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    active = set(out_text.split())
    return {run_id: task for task, ids in tasks.items() if task in active for run_id in ids}


def run_slurm(request: ExecRequest) -> list[RunRecord] | None:
    """Submit the request's runs (those not already queued or running) and wait unless detached."""
    out_dir, log = request.out_dir, request.log
    active = active_runs(out_dir)
    runs = list(request.runs)
    if active:
        log(f"{sum(r.run_id in active for r in runs)} run(s) already queued or running in Slurm jobs: not resubmitted")
        runs = [r for r in runs if r.run_id not in active]
    if not runs:
        return None if request.detach else []
    options = request.slurm
    submission = submit(make_slurm_executor(out_dir, options, request.grid_name), runs, out_dir, options,
                        request.retry_failed)
    arrays = sorted({j.split("_")[0] for j in submission.job_ids})
    log(f"submitted {len(runs)} runs as {len(submission.jobs)} array task(s) in Slurm job(s) {', '.join(arrays)}; "
        f"logs in {ResultStore(out_dir).executor_folder('slurm')}")
    if request.detach:
        log(f"detached: follow with `noisybench status {out_dir}`; rerun the same command to resubmit what is missing")
        return None
    log("waiting for the jobs (Ctrl-C stops waiting; the jobs keep running)")
    return wait(submission, out_dir, request.progress)
