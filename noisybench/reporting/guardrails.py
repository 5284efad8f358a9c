"""Protocol guardrails: warnings printed with every report.

- runs in one cell that differ in protocol (epochs, protocol, hyperparameters or their provenance);
- methods whose runs in one setting use different seeds, or the same seed with a different noise realisation
  (such pairs are refused by the paired tests);
- a metric that selects on the test set; cells with fewer than 5 seeds; failed runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import pandas as pd


class BoardFacts(Protocol):
    """What the guardrails read of a leaderboard (kept structural: the leaderboard imports this module)."""

    leaky: bool
    metric_name: str
    failed_runs: int
    corrupt_runs: list[str]

    def cell_sizes(self) -> Iterable[int]:
        """The number of seeds of every cell."""
        ...

#: Run fields that must agree within one cell.
PROTOCOL_FIELDS = ("epochs", "protocol", "hparams", "hparam_sources", "fingerprint")
#: Fewer seeds than this get a low-power warning (headline claims need 5 or more).
WARN_SEEDS = 5


def matched_pairs(done: pd.DataFrame, key: tuple[str, str], a: str, b: str) -> list[int]:
    """Seeds that methods ``a`` and ``b`` both finished in setting ``key`` with the same noise hash."""
    dataset, noise = key
    in_col = done[(done["dataset"] == dataset) & (done["noise"] == noise)]
    hashes = {m: dict(zip(g["seed"], g["noise_hash"])) for m, g in in_col.groupby("method") if m in (a, b)}
    first, second = hashes.get(a, {}), hashes.get(b, {})
    return sorted(int(s) for s in set(first) & set(second) if _same_noise(first[s], second[s]))


def _same_noise(h1: object, h2: object) -> bool:
    missing = pd.isna(h1) or pd.isna(h2)  # type: ignore[arg-type]
    return bool(missing or h1 == h2)


def _cell_protocol(done: pd.DataFrame) -> list[str]:
    out = []
    present = [f for f in PROTOCOL_FIELDS if f in done.columns]
    for (method, dataset, noise), group in done.groupby(["method", "dataset", "noise"], sort=True):
        for name in present:
            values = sorted(map(str, group[name].dropna().unique()))
            if len(values) > 1:
                shown = "; ".join(v if len(v) <= 60 else v[:57] + "..." for v in values)
                out.append(f"{method} on {dataset} {noise}: runs differ in {name} ({shown}); "
                           "the cell mixes protocols")
    return out


def _seed_matching(done: pd.DataFrame) -> list[str]:
    out = []
    for (dataset, noise), col in done.groupby(["dataset", "noise"], sort=True):
        seeds = {m: frozenset(int(s) for s in g["seed"]) for m, g in col.groupby("method")}
        if len(set(seeds.values())) > 1:
            listing = ", ".join(f"{m}: {sorted(s)}" for m, s in sorted(seeds.items()))
            out.append(f"{dataset} {noise}: seeds are not matched across methods ({listing}); "
                       "paired tests use the common seeds only")
        for seed, runs in col.groupby("seed"):
            hashes = set(runs["noise_hash"].dropna())
            if len(hashes) > 1:
                out.append(f"{dataset} {noise} seed {seed}: methods saw different noise realisations "
                           f"({len(hashes)} noise hashes); these runs are not paired")
    return out


def select_tuned(done: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep, per (method, dataset, noise), the ``[sweep]`` point with the best mean noisy-val accuracy.

    Runs of a sweep differ only in the swept hyperparameters; the point is chosen on the noisy
    validation accuracy of the selected epoch (``val_acc_best``), averaged over seeds, never on the
    test set. Ties go to the first point in sorted order. Runs without a sweep pass through.
    """
    if "sweep" not in done.columns or "val_acc_best" not in done.columns:
        return done, []
    swept = done["sweep"].fillna("{}") != "{}"
    if not swept.any():
        return done, []
    keep, notes = [done[~swept]], []
    for (method, dataset, noise), cell in done[swept].groupby(["method", "dataset", "noise"], sort=True):
        score = cell.groupby("sweep")["val_acc_best"].mean().sort_index()
        best = score.idxmax()
        keep.append(cell[cell["sweep"] == best])
        notes.append(f"{method} on {dataset} {noise}: {best} tuned on noisy validation "
                     f"(mean val acc {score[best]:.2f}; {len(score)} candidates)")
    return pd.concat(keep).sort_index(), notes


def drop_superseded(done: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep one run per (method, dataset, noise, seed): the most recently finished one.

    Two finished runs with the same seed in one cell have different run ids, so they differ in
    configuration (dataset parameters, training settings, hyperparameters or code schema): typically a grid
    edited between two ``noisybench run`` calls into the same directory. Averaging them would mix protocols,
    so the older runs are left out, with a warning per cell.
    """
    keys = ["method", "dataset", "noise", "seed"]
    order = done.sort_values("finished_at", kind="stable") if "finished_at" in done.columns else done
    kept = order.drop_duplicates(keys, keep="last")
    dropped = order[~order.index.isin(kept.index)]
    if dropped.empty:
        return kept.sort_index(), []
    cells = [f"{m} on {d} {n}" for (m, d, n), _ in dropped.groupby(keys[:3], sort=True)]
    shown = "; ".join(cells[:4]) + (f"; and {len(cells) - 4} more" if len(cells) > 4 else "")
    out = [f"{len(dropped)} older run(s) in {len(cells)} cell(s) repeat a seed with another configuration "
           f"(different run id; {shown}): only the most recent run per seed is used. "
           "Use a fresh --out directory when the grid changes"]
    return kept.sort_index(), out


def check_protocol(done: pd.DataFrame, board: BoardFacts) -> list[str]:
    """All guardrail warnings for the successful runs ``done`` behind ``board``."""
    out: list[str] = []
    if board.leaky:
        out.append(f"metric {board.metric_name!r} selects the epoch on the test set (leaky, 'test-selected'): "
                   "use it only to compare with papers that report it, never to rank methods")
    out += _cell_protocol(done)
    out += _seed_matching(done)
    if "stale" in done.columns and done["stale"].fillna(False).astype(bool).any():
        n = int(done["stale"].fillna(False).astype(bool).sum())
        out.append(f"{n} run(s) are stale (their code or input files changed since they ran; kept with --keep-stale): "
                   "rerun them with `noisybench run GRID --rerun-stale`")
    low = sorted({n for n in board.cell_sizes() if n < WARN_SEEDS})
    if low:
        out.append(f"cells with n = {', '.join(map(str, low))} seeds (< {WARN_SEEDS}): paired tests have little power; "
                   "'not significant' is weak evidence of equality")
    failed = board.failed_runs - len(board.corrupt_runs)
    if failed:
        out.append(f"{failed} failed run(s) are left out; see `noisybench status DIR`")
    if board.corrupt_runs:
        shown = "; ".join(board.corrupt_runs[:3]) + ("; ..." if len(board.corrupt_runs) > 3 else "")
        out.append(f"{len(board.corrupt_runs)} unreadable result file(s) are left out ({shown}); "
                   "`noisybench run` redoes corrupt ones (files of another user need their owner's permission)")
    return out
