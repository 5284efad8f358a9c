"""Published numbers (``published.csv``, each row with its source) and matching them to leaderboard cells."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from noisybench.errors import DataError


class BoardView(Protocol):
    """What matching reads of a leaderboard (structural: the leaderboard imports this module lazily)."""

    columns: Sequence[Any]
    methods: Sequence[str]
    metric_name: str
    protocols: dict[tuple[str, str, str], str]  # (method, dataset, noise) -> the protocol of our runs

    def cell(self, method: str, column: Any) -> Any:
        """The cell of ``method`` in ``column``, or None."""
        ...

FIELDS = ["source", "paper_method", "method", "dataset", "noise_family", "noise_rate", "metric", "value", "std",
          "arch", "tag", "note"]
#: ``protocol`` column: ``paper`` (the method's own published recipe) or ``other``; absent means ``other``.
ROW_PROTOCOLS = {"paper", "other"}
MATCHED = "published"
OTHER = "published, other protocol"
METRIC_NAMES = {"best", "mean-last", "val", "last", "unspecified"}
TAGS = {"p", "p?", "oc", "uc", "d", "s", "a"}
#: ``noise_family`` of the dataset's own (real) noisy labels; matches our ``none`` and ``human:*`` runs.
REAL = "real"


def normalise_method(name: str) -> str:
    """Method key for matching: lower case, ``+`` -> ``plus``, without ``-``, ``_``, spaces."""
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("+", "plus"))


def _parse(row: dict[str, str], where: str) -> dict[str, Any]:
    missing = [f for f in FIELDS if f not in row]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}")
    out: dict[str, Any] = dict(row)
    try:
        out["value"] = float(row["value"])
        out["std"] = float(row["std"]) if row["std"] else None
        out["noise_rate"] = float(row["noise_rate"]) if row["noise_rate"] else None
    except ValueError as exc:
        raise DataError(f"{where}: not a number ({exc})") from None
    out["protocol"] = row.get("protocol") or "other"
    if out["protocol"] not in ROW_PROTOCOLS:
        raise DataError(f"{where}: protocol {out['protocol']!r} not in {sorted(ROW_PROTOCOLS)}")
    if row["metric"] not in METRIC_NAMES:
        raise DataError(f"{where}: metric {row['metric']!r} not in {sorted(METRIC_NAMES)}")
    bad = [t for t in row["tag"].split(";") if t not in TAGS]
    if bad or not row["source"]:
        raise DataError(f"{where}: every row needs a source and provenance tags from {sorted(TAGS)}, "
                        f"got {row['tag']!r}")
    return out


def load_published(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Rows of the published-numbers file (the packaged ``noisybench/reporting/published.csv`` by default).

    Lines starting with ``#`` are comments. Raises :class:`DataError` naming the line on a bad row.
    """
    if path is None:
        return [dict(r) for r in _packaged()]
    return _read(Path(path).read_text(), str(path))


@lru_cache(maxsize=1)
def _packaged() -> tuple[dict[str, Any], ...]:
    text = resources.files("noisybench").joinpath("reporting/published.csv").read_text()
    return tuple(_read(text, "noisybench/reporting/published.csv"))


def _read(text: str, where: str) -> list[dict[str, Any]]:
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(line for _, line in lines)))
    return [_parse(row, f"{where} line {lines[k + 1][0]}") for k, row in enumerate(reader)]


def _noise_matches(row: dict[str, Any], family: str | None, rate: float | None) -> bool:
    if row["noise_family"] == REAL:
        return family in (None, "none", "human")
    if row["noise_family"] != family:
        return False
    if row["noise_rate"] is None or rate is None:
        return row["noise_rate"] is None and rate is None
    return math.isclose(row["noise_rate"], rate, abs_tol=1e-9)


def match_published(board: BoardView, rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Published values for every (method, column) of ``board`` whose method, dataset and noise convention match.

    A value is ``kind = "published"`` (comparable) only when the metric and the protocol match too:
    our runs used ``protocol = "paper"`` and the row is the method's own recipe (``protocol = paper``).
    Every other value of the same setting is ``kind = "published, other protocol"``, listed after the
    comparable ones. Each result holds ``kind, method, dataset, noise, ours_mean, ours_std, ours_n,
    ours_metric, ours_protocol``, the published row's fields (``value``, ``std``, ``metric``,
    ``protocol``, ``source``, ``tag``, ``arch``, ``note``, ``paper_method``), ``same_metric`` and
    ``same_protocol``.
    """
    rows = load_published() if rows is None else rows
    by_method: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_method.setdefault(normalise_method(row["method"]), []).append(row)
    out = []
    for column in board.columns:
        for method in board.methods:
            cell = board.cell(method, column)
            if cell is None:
                continue
            ours = getattr(board, "protocols", {}).get((method, *column.key), "")
            for row in by_method.get(normalise_method(method), []):
                if row["dataset"] == column.dataset and _noise_matches(row, column.family, column.rate):
                    same_metric = row["metric"] == board.metric_name
                    same_protocol = ours == "paper" and row["protocol"] == "paper"
                    out.append({"kind": MATCHED if same_metric and same_protocol else OTHER,
                                "method": method, "dataset": column.dataset, "noise": column.noise,
                                "ours_mean": cell.mean, "ours_std": cell.std, "ours_n": cell.n,
                                "ours_metric": board.metric_name, "ours_protocol": ours,
                                "same_metric": same_metric, "same_protocol": same_protocol,
                                **{k: row[k] for k in ("paper_method", "value", "std", "metric", "protocol", "source",
                                                       "tag", "arch", "note")}})
    return sorted(out, key=lambda r: r["kind"] != MATCHED)
