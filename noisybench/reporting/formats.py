"""Plain renderers of a :class:`Leaderboard`: terminal, Markdown, CSV (long, wide, runs) and JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

import pandas as pd
from tabulate import tabulate

from noisybench.metrics import METRIC_TITLES
from noisybench.reporting.leaderboard import Cell, Leaderboard
from noisybench.reporting.stats import MIN_SEEDS_TTEST
from noisybench.reporting.tuning import render_tuning, sentence

DAGGER = "†"
#: Mark of a cell that was not tested against the column's best (fewer than 3 matched seeds).
NOT_TESTED = "‡"


def fmt_num(x: float | None, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals, or an en dash for None / NaN."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_p(p: float | None) -> str:
    """A p-value for people: ``<0.001`` or 3 decimals; ``n/a`` when not tested."""
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def n_summary(board: Leaderboard) -> str:
    """``n = 3 seeds per cell`` or ``n = 2-5 seeds per cell (shown per cell)``."""
    ns = board.n_values()
    if not ns:
        return "no cells"
    if len(ns) == 1:
        return f"n = {ns[0]} seed{'s' if ns[0] != 1 else ''} per cell"
    return f"n = {ns[0]}–{ns[-1]} seeds per cell (n shown per cell)"


def marks_text(board: Leaderboard, best: str = "bold", second: str = "underlined", marker: str = DAGGER,
               not_tested: str = NOT_TESTED) -> list[str]:
    """Sentences explaining the marks that occur: best, second (3+ methods only), not worse, not tested."""
    cells = list(board.cells.values())
    parts = [f"Best per column {best}" + (f", second {second}." if board.shows_second() else ".")]
    if any(c.p_value is not None for c in cells):
        parts.append(f"{marker}: difference from the column's best not significant (two-sided paired t-test over "
                     f"matched seeds, Holm correction per column, α = {board.alpha:g}); unmarked cells are "
                     "significantly worse.")
    if any(c.not_tested for c in cells):
        parts.append(f"{not_tested}: not tested (fewer than {MIN_SEEDS_TTEST} seeds matched with the best).")
    return parts


def protocol_summary(board: Leaderboard) -> str:
    """Which protocol produced the numbers: ``shared`` (one recipe per dataset), ``paper`` (each method's own)."""
    meaning = {"shared": "one recipe per dataset for every method", "paper": "each method's own published recipe"}
    names = sorted(set(board.protocols.values()))
    return "; ".join(f"{n} ({meaning[n]})" if n in meaning else n for n in names)


def legend(board: Leaderboard, best: str = "bold", second: str = "underlined", marker: str = DAGGER) -> str:
    """The caption / legend text: metric, N, the std, the test, the correction and alpha."""
    title = METRIC_TITLES.get(board.metric, board.metric)
    leaky = " TEST-SELECTED (leaky): not a valid basis for ranking." if board.leaky else ""
    parts = [
        f"Metric: {title} ({board.metric_name}).{leaky}",
        *([f"Protocol: {protocol_summary(board)}."] if board.protocols else []),
        f"Cells: mean ± sample std (ddof = 1) over seeds; {n_summary(board)}.",
        *marks_text(board, best, second, marker),
    ]
    if board.tuned:
        parts.append("tuned: the swept value with the best mean noisy-validation accuracy per setting.")
    if board.tuning is not None:
        parts.append(sentence(board.tuning, board.method_label))
    return " ".join(parts)


def provenance_summary(board: Leaderboard) -> str:
    """``Hyperparameter provenance: ce suite; gce paper-default+user.`` ('' when no run records any)."""
    parts = []
    for method in board.methods:
        tags = sorted({t for value in board.provenance.get(method, {}).values() for t in value.split("/")})
        if tags:
            parts.append(f"{board.method_label(method)} {'+'.join(tags)}")
    return f"Hyperparameter provenance: {'; '.join(parts)}." if parts else ""


def cell_text(cell: Cell | None, show_n: bool, best: tuple[str, str] = ("", ""), second: tuple[str, str] = ("", ""),
              marker: str = DAGGER) -> str:
    """``mean ± std`` with optional best/second wrappers, the significance marker and ``(n)``."""
    if cell is None:
        return "–"
    wrap = best if cell.best else second if cell.second else ("", "")
    text = f"{wrap[0]}{fmt_num(cell.mean)}{wrap[1]} ± {fmt_num(cell.std)}"
    if cell.not_worse:
        text += marker
    elif cell.not_tested:
        text += NOT_TESTED
    if show_n:
        text += f" (n={cell.n})"
    return text


def wide_frame(board: Leaderboard, flavour: str = "table") -> pd.DataFrame:
    """Methods x ``dataset noise`` frame of cell strings (``table`` marks with */+; ``md`` with **/<u>)."""
    marks = {"table": (("*", "*"), ("+", "")), "md": (("**", "**"), ("<u>", "</u>"))}[flavour]
    show_n = True
    data = {f"{c.dataset_label} {c.label}": [cell_text(board.cell(m, c), show_n, *marks) for m in board.methods]
            for c in board.columns}
    return pd.DataFrame(data, index=pd.Index([board.method_label(m) for m in board.methods], name="method"))


def _wilcoxon_lines(board: Leaderboard) -> list[str]:
    a = board.across
    assert a is not None
    w, name = a.wilcoxon, board.method_label
    if w.reason:
        return [w.reason[:1].upper() + w.reason[1:] + "."]
    if w.cannot_reach:
        m = len(w.pairs)
        listed = ", ".join(f"{name(p['a'])}–{name(p['b'])} {fmt_p(p['p_value'])}" for p in w.pairs)
        return [f"Pairwise Wilcoxon–Holm cannot reach α = {board.alpha:g} here: with {len(a.settings)} settings "
                f"and {m} pairs the smallest possible Holm-adjusted p is {m} × 2/2^{len(a.settings)} = "
                f"{w.min_p_holm:.3f}; no pair can be declared different (it needs ≥ {w.settings_needed} settings). "
                f"Unadjusted p, descriptive only: {listed}."]
    lines = []
    for p in w.pairs:
        flag = "significant" if p["significant"] else "not significant"
        lines.append(f"Wilcoxon {name(p['a'])} vs {name(p['b'])}: p = {fmt_p(p['p_value'])}, "
                     f"Holm p = {fmt_p(p['p_holm'])} ({flag}; {p['n_nonzero']} nonzero of {p['n']})")
    return lines


def cd_text(board: Leaderboard) -> str:
    """The Nemenyi critical difference and the pairs whose rank difference exceeds it ('' when not computed)."""
    a = board.across
    if a is None or a.cd is None:
        return ""
    text = f"Nemenyi critical difference (α = {board.alpha:g}): {a.cd:.2f} ranks"
    if not a.cd_exceeded:
        return text + "; no pair of average ranks differs by more."
    pairs = ", ".join(f"{board.method_label(x)}–{board.method_label(y)} ({d:.2f})" for x, y, d in a.cd_exceeded)
    return text + f"; pairs whose average ranks differ by more: {pairs}."


def across_lines(board: Leaderboard) -> list[str]:
    """Average ranks, Friedman / Iman–Davenport, Nemenyi CD and pairwise Wilcoxon results as text lines."""
    a = board.across
    if a is None:
        return ["Across settings: not computed (needs >= 2 methods and a setting that every method covers)."]
    ranks = ", ".join(f"{board.method_label(m)} {r:.2f}" for m, r in sorted(a.ranks.items(), key=lambda kv: kv[1]))
    exact = " Ties are exact (correct/total counts)." if a.exact else ""
    lines = [f"Across {len(a.settings)} settings covered by all {len(a.methods)} methods — average rank "
             f"(1 = best): {ranks}. Blocks are settings (cell means); settings that share a dataset are not "
             f"independent, so read these tests as descriptive.{exact}"]
    f = a.friedman
    if f is not None:
        fid = f"F_ID = {f.f_id:.3f}, " if f.f_id is not None else ""
        lines.append(f"Friedman χ² = {f.chi2:.3f} (p = {fmt_p(f.p_chi2)}); {fid}p = {fmt_p(f.p_value)} "
                     f"[{f.p_method}]" + (f"; {a.friedman_note}" if a.friedman_note else "") + ".")
    elif a.friedman_note:
        lines.append(a.friedman_note + ".")
    if cd_text(board):
        lines.append(cd_text(board))
    return lines + _wilcoxon_lines(board)


def published_frame(board: Leaderboard) -> pd.DataFrame:
    """Our value beside each published value of the same setting: matching ones first, then those of another
    protocol or metric ("published, other protocol")."""
    rows = [{"kind": p["kind"], "method": board.method_label(p["method"]), "setting": f"{p['dataset']} {p['noise']}",
             "our protocol": p["ours_protocol"],
             f"ours ({board.metric_name})": f"{fmt_num(p['ours_mean'])} ± {fmt_num(p['ours_std'])} (n={p['ours_n']})",
             "paper": f"{p['value']:g}" + (f" ± {p['std']:.2f}" if p["std"] is not None else ""),
             "paper metric": p["metric"] + ("" if p["same_metric"] else " (differs)"),
             "source": p["source"], "arch": p["arch"], "tag": p["tag"]} for p in board.published]
    return pd.DataFrame(rows)


def provenance_frame(board: Leaderboard) -> pd.DataFrame:
    """One row per method: its hyperparameters and their provenance tags."""
    rows = [{"method": board.method_label(m),
             "hyperparameter provenance": ", ".join(f"{k}: {v}" for k, v in d.items()) or "–"}
            for m, d in board.provenance.items()]
    return pd.DataFrame(rows)


def render_text(board: Leaderboard, flavour: str = "table") -> str:
    """Terminal (``table``) or Markdown (``md``) report."""
    tablefmt = "simple" if flavour == "table" else "github"
    title = "Leaderboard — test-selected (leaky)" if board.leaky else "Leaderboard"
    out = [f"{'## ' if flavour == 'md' else ''}{title}", "",
           tabulate(wide_frame(board, flavour), headers="keys", tablefmt=tablefmt, stralign="right"), "",
           legend(board, *(("marked *", "marked +") if flavour == "table" else ("bold", "underlined")))]
    out += ["", *across_lines(board)]
    if flavour == "table" and provenance_summary(board):  # the table is wide: one line, not a table
        out += ["", provenance_summary(board)]
    extra = [("Published numbers", published_frame(board))]
    if flavour == "md":
        extra.append(("Hyperparameter provenance", provenance_frame(board)))
    for heading, frame in extra:
        if not frame.empty:
            out += ["", f"{'### ' if flavour == 'md' else ''}{heading}",
                    tabulate(frame, headers="keys", tablefmt=tablefmt, showindex=False, disable_numparse=True)]
    if board.tuned:
        out += ["", f"{'### ' if flavour == 'md' else ''}Tuned on noisy validation", *[f"- {t}" for t in board.tuned]]
    if board.tuning is not None:
        heading = "### " if flavour == "md" else ""
        out += ["", render_tuning(board.tuning, board.method_label, flavour, heading, with_sentence=False).rstrip()]
    if board.warnings:
        out += ["", f"{'### ' if flavour == 'md' else ''}Warnings", *[f"- {w}" for w in board.warnings]]
    return "\n".join(out) + "\n"


def long_frame(board: Leaderboard) -> pd.DataFrame:
    """One row per (method, dataset, noise) cell with every statistic."""
    rows = []
    for c in board.cells.values():
        if (c.dataset, c.noise) not in {col.key for col in board.columns}:
            continue
        tuned = board.tuning.chosen(c.method, c.dataset, c.noise) if board.tuning else None
        rows.append({"method": c.method, "dataset": c.dataset, "noise": c.noise, "metric": board.metric_name,
                     "protocol": board.protocols.get((c.method, c.dataset, c.noise), ""),
                     "tuned_trial": tuned.chosen if tuned else None,
                     "tuning_budget": tuned.effective_budget if tuned else None,
                     "mean": c.mean, "std": c.std, "n": c.n, "place": c.place, "p_value": c.p_value,
                     "p_holm": c.p_holm, "significant": c.significant, "not_worse_marker": c.not_worse,
                     "not_tested": c.not_tested, "n_paired": c.n_paired, "mean_diff_to_best": c.mean_diff,
                     "method_display": board.method_label(c.method)})
    return pd.DataFrame(rows)


def wide_numbers(board: Leaderboard) -> pd.DataFrame:
    """Methods x (``dataset noise metric mean`` / ``std`` / ``n``) numeric columns; headers name the metric."""
    data: dict[str, list[Any]] = {}
    for col in board.columns:
        for stat in ("mean", "std", "n"):
            data[f"{col.dataset} {col.noise} {board.metric_name} {stat}"] = [
                getattr(board.cell(m, col), stat) if board.cell(m, col) else None for m in board.methods]
    return pd.DataFrame(data, index=pd.Index(board.methods, name="method"))


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def to_json_dict(board: Leaderboard) -> dict[str, Any]:
    """Everything in the report as plain JSON types (NaN -> null)."""
    cells = [{**{k: v for k, v in asdict(c).items() if k not in ("values", "exact")},
              "seeds": sorted(c.values), "values": [c.values[s] for s in sorted(c.values)],
              "exact_mean": str(c.exact_mean) if c.exact_mean is not None else None,
              "best": c.best, "second": c.second, "not_worse_marker": c.not_worse, "not_tested": c.not_tested,
              "method_display": board.method_label(c.method)}
             for c in board.cells.values()]
    across = None
    if board.across is not None:
        a = board.across
        across = {"methods": a.methods, "settings": [list(s) for s in a.settings], "average_ranks": a.ranks,
                  "friedman": asdict(a.friedman) if a.friedman else None, "friedman_note": a.friedman_note,
                  "wilcoxon": {"pairs": a.wilcoxon.pairs, "reason": a.wilcoxon.reason,
                               "min_p_holm": a.wilcoxon.min_p_holm, "cannot_reach_alpha": a.wilcoxon.cannot_reach,
                               "settings_needed": a.wilcoxon.settings_needed},
                  "nemenyi_cd": a.cd, "cd_exceeded": [list(e) for e in a.cd_exceeded], "exact_ties": a.exact}
    return _clean({
        "metric": board.metric_name, "metric_column": board.metric, "leaky": board.leaky, "alpha": board.alpha,
        "test": "paired t-test (two-sided) vs the column's best over matched seeds, Holm per column",
        "std_ddof": 1, "legend": legend(board), "methods": board.methods,
        "columns": [{"dataset": c.dataset, "noise": c.noise, "family": c.family, "rate": c.rate, "label": c.label,
                     "dataset_display": c.dataset_label}
                    for c in board.columns],
        "cells": cells, "across_settings": across, "warnings": board.warnings, "published": board.published,
        "hparam_provenance": board.provenance, "tuned": board.tuned, "failed_runs": board.failed_runs,
        "tuning": None if board.tuning is None else {
            "sentence": sentence(board.tuning, board.method_label),
            "settings": [asdict(s) for s in board.tuning.settings]},
        "corrupt_runs": board.corrupt_runs, "method_display": {m: board.method_label(m) for m in board.methods},
    })


def render_json(board: Leaderboard) -> str:
    """The JSON report (see :func:`to_json_dict`)."""
    return json.dumps(to_json_dict(board), indent=1, sort_keys=False) + "\n"
