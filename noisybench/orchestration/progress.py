"""Progress lines of a running grid: ``[done/total] status run detail elapsed ETA``."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from noisybench.config import RunConfig

#: Called with (record, runs finished so far, total) after every run.
ProgressFn = Callable[[dict[str, Any], int, int], None]


class ProgressPrinter:
    """Prints ``[done/total] label status metric ETA`` lines to a stream."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()

    def __call__(self, record: dict[str, Any], done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (total - done)
        run = RunConfig.from_dict(record["config"])
        if record["status"] == "done":
            metrics = record["metrics"]
            val = metrics.get("val_selected")
            detail = f"val-selected {val:.2f}" if isinstance(val, (int, float)) and not math.isnan(val) else \
                f"last {metrics.get('last', float('nan')):.2f} (no validation split)"
        elif record["status"] == "running":
            detail = f"skipped: {record.get('reason', '')}"
        else:
            detail = record.get("reason", "")[:120]
        width = len(str(total))
        self.stream.write(
            f"[{done:>{width}}/{total}] {record['status']:<6} {run.label():<40} {detail}  "
            f"elapsed {_fmt(elapsed)}  ETA {_fmt(eta)}\n"
        )
        self.stream.flush()


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
