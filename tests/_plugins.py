"""Method plugins that live outside this process: an installed distribution (a ``.dist-info`` folder with an
entry point) on ``PYTHONPATH``, so the ``noisybench`` command and its pool workers load them as a user's
plugin package would be loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def install_plugin(folder: Path, module: str, source: str, methods: dict[str, str]) -> dict[str, str]:
    """Write ``module`` (its ``source``) and a distribution declaring ``methods`` (entry-point name -> class name)
    under ``folder``; return an environment whose ``PYTHONPATH`` finds them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(source)
    dist = folder / f"{module}-0.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.0\n")
    lines = "".join(f"{name} = {module}:{cls}\n" for name, cls in methods.items())
    (dist / "entry_points.txt").write_text(f"[noisybench.methods]\n{lines}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(
        [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("OMP_NUM_THREADS", None)
    return env


def cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``noisybench ARGS`` in a fresh process and wait for it."""
    return subprocess.run([sys.executable, "-m", "noisybench.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
