"""Named random streams: every random draw of a run comes from a stream named by what it is for.

``stream("noise", dataset_id, spec, seed)`` is the same sequence in every process, so noise,
split and per-epoch randomness are pure functions of their names.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stream(*parts: object) -> np.random.SeedSequence:
    """A seed sequence derived from the sha256 of ``"|".join(map(str, parts))``."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return np.random.SeedSequence(int(digest[:32], 16))
