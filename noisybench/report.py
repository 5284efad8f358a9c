"""Leaderboards: methods x settings, mean +- sample std over seeds."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from noisybench.errors import NoisybenchError
from noisybench.metrics import LEAKY_METRICS, METRIC_TITLES, metric_column
from noisybench.results import load_results


def leaderboard_cells(frame: pd.DataFrame, metric: str = "val") -> pd.DataFrame:
    """Mean, sample std (ddof = 1) and n of ``metric`` per (method, dataset, noise) of done runs."""
    column = metric_column(metric)
    done = frame[frame["status"] == "done"]
    grouped = done.groupby(["method", "dataset", "noise"], sort=False)[column]
    cells = grouped.agg(mean="mean", std=lambda s: s.std(ddof=1), n="count").reset_index()
    return cells


def leaderboard_table(frame: pd.DataFrame, metric: str = "val") -> pd.DataFrame:
    """Wide table: rows = methods, columns = ``dataset noise``, cells ``mean ± std (n)``."""
    cells = leaderboard_cells(frame, metric)
    if cells.empty:
        return pd.DataFrame()
    cells["setting"] = cells["dataset"] + " " + cells["noise"]
    cells["cell"] = [_cell(m, s, n) for m, s, n in zip(cells["mean"], cells["std"], cells["n"])]
    settings = list(dict.fromkeys(cells.sort_values(["dataset", "noise"])["setting"]))
    table = cells.pivot(index="method", columns="setting", values="cell")
    return table.reindex(columns=settings).fillna("–")


def _cell(mean: float, std: float, n: int) -> str:
    spread = "–" if n < 2 or math.isnan(std) else f"{std:.2f}"
    return f"{mean:.2f} ± {spread} (n={n})"


def render_report(out_dir: str | Path, fmt: str = "table", metric: str = "val") -> str:
    """Render the leaderboard of a results directory as ``table``, ``md`` or ``csv``."""
    frame = load_results(out_dir)
    column = metric_column(metric)
    if fmt == "csv":
        return frame.drop(columns=["hparams"]).to_csv(index=False)
    if frame.empty:
        raise NoisybenchError(f"no finished runs in {str(out_dir)!r}; run `noisybench run GRID --out {out_dir}` first")
    table = leaderboard_table(frame, metric)
    tablefmt = {"table": "simple", "md": "github"}.get(fmt)
    if tablefmt is None:
        raise NoisybenchError(f"unknown report format {fmt!r}; choose table, md or csv")
    title = f"metric: {METRIC_TITLES[column]}; mean ± sample std (ddof=1) over seeds"
    if column in LEAKY_METRICS:
        title = "test-selected (leaky) — " + title
    failed = int((frame["status"] == "failed").sum())
    footer = f"\n{failed} failed run(s): see `noisybench status {out_dir}`" if failed else ""
    body = tabulate(table, headers="keys", tablefmt=tablefmt, stralign="right")
    return f"{title}\n{body}{footer}\n"
