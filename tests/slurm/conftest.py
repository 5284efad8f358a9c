"""The real-Slurm tier: needs the cluster .ci/slurm-up.sh starts. Skips locally without one;
under CI (``$CI`` set) a missing cluster FAILS the tests instead, so they can never silently vanish."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _cluster_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (run .ci/install-slurm.sh)"
    conf = os.environ.get("SLURM_CONF")
    if not conf or not Path(conf).is_file():
        return "SLURM_CONF is unset or missing (run: eval \"$(.ci/slurm-up.sh)\")"
    try:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo failed: {exc}"
    if not {"idle", "mixed", "allocated", "mix", "alloc"} & set(state.split()):
        return f"no usable Slurm node (sinfo says {state.strip()!r})"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The partition to submit to, once a live single-node cluster is confirmed."""
    problem = _cluster_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires the Slurm cluster, but {problem}", pytrace=False)
        pytest.skip(f"no Slurm cluster: {problem}")
    return "debug"
