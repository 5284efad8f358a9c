"""Test plugins (a local plugin folder): CE and ELR whose epochs last ``$SLEEPY_SECONDS`` longer.

Tests that interrupt or kill a grid mid-run load this folder (``$NOISYBENCH_PLUGINS`` or a grid's
``[plugins] paths``) to widen the window in which runs are in flight; the sleep changes no number.
"""

from __future__ import annotations

import os
import time
from typing import Any

from noisybench.methods.ce import CE
from noisybench.methods.elr import ELR
from noisybench.registry import register_method

#: This folder, for grids and ``$NOISYBENCH_PLUGINS``.
FOLDER = os.path.dirname(os.path.abspath(__file__))


class _Sleepy:
    def end_epoch(self, ctx: Any, epoch: int) -> dict[str, float]:
        time.sleep(float(os.environ.get("SLEEPY_SECONDS") or 0))
        return super().end_epoch(ctx, epoch)  # type: ignore[misc]


@register_method("sleepy-ce")
class SleepyCE(_Sleepy, CE):
    """CE with slow epochs (tests)."""


@register_method("sleepy-elr")
class SleepyELR(_Sleepy, ELR):
    """ELR with slow epochs (tests)."""
