"""One self-contained HTML report: tables, statistics, warnings and figures embedded as base64 PNG."""

from __future__ import annotations

import html
from datetime import datetime, timezone

import pandas as pd
from matplotlib.figure import Figure

from noisybench.reporting.formats import across_lines, cell_text, legend, provenance_frame, published_frame
from noisybench.reporting.leaderboard import Leaderboard
from noisybench.reporting.plots import figure_caption, png_base64
from noisybench.reporting.tuning import sentence, tuning_frame

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { padding: 0.3em 0.7em; text-align: right; }
th { border-bottom: 1px solid #444; } td:first-child, th:first-child { text-align: left; }
thead tr:first-child th { border-top: 2px solid #222; } tbody tr:last-child td { border-bottom: 2px solid #222; }
th.group { border-bottom: 1px solid #888; text-align: center; }
.legend, .muted { color: #555; font-size: 0.85em; max-width: 70em; }
.warn { background: #fff6d6; border-left: 4px solid #e0a800; padding: 0.5em 1em; }
.leaky { background: #fde2e1; border-left: 4px solid #c0392b; padding: 0.5em 1em; }
table.dataframe td { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def leaderboard_html(board: Leaderboard) -> str:
    """The leaderboard as an HTML table with dataset column groups."""
    groups: list[tuple[str, int]] = []
    for col in board.columns:
        if groups and groups[-1][0] == col.dataset_label:
            groups[-1] = (col.dataset_label, groups[-1][1] + 1)
        else:
            groups.append((col.dataset_label, 1))
    top = "".join(f'<th class="group" colspan="{n}">{_esc(d)}</th>' for d, n in groups)
    sub = "".join(f"<th>{_esc(c.label)}</th>" for c in board.columns)
    rows = []
    for m in board.methods:
        cells = "".join(
            f"<td>{cell_text(board.cell(m, c), True, ('<strong>', '</strong>'), ('<u>', '</u>'))}</td>"
            .replace(" (n=", ' <span class="muted">(n=').replace(")</td>", ")</span></td>")
            for c in board.columns)
        rows.append(f"<tr><td>{_esc(board.method_label(m))}</td>{cells}</tr>")
    head = f'<thead><tr><th rowspan="2">Method</th>{top}</tr><tr>{sub}</tr></thead>'
    return f"<table>{head}<tbody>{''.join(rows)}</tbody></table>"


def _frame_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return ""
    return frame.to_html(index=False, escape=True, border=0)


def render_html(board: Leaderboard, figures: dict[str, Figure], source: str = "") -> str:
    """The report page.

    Parameters
    ----------
    board
        The leaderboard.
    figures
        Figures keyed by name, embedded as base64 PNG in this order.
    source
        Results directory shown in the header.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>noisybench report</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>noisybench report</h1><p class='muted'>{_esc(source)} — generated {stamp}</p>"]
    if board.leaky:
        parts.append("<p class='leaky'><strong>Test-selected (leaky) metric.</strong> These numbers pick the epoch on "
                     "the test set; use them only to compare with papers that do the same.</p>")
    parts += ["<h2>Leaderboard</h2>", leaderboard_html(board),
              f"<p class='legend'>{_esc(legend(board, 'bold', 'underlined'))}</p>",
              "<h2>Across settings</h2>",
              "<ul>" + "".join(f"<li>{_esc(x)}</li>" for x in across_lines(board)) + "</ul>"]
    if board.warnings:
        items = "".join(f"<li>{_esc(w)}</li>" for w in board.warnings)
        parts.append(f"<h2>Warnings</h2><div class='warn'><ul>{items}</ul></div>")
    if board.tuning is not None:
        parts += ["<h2>Tuning</h2>", f"<p class='legend'>{_esc(sentence(board.tuning, board.method_label))}</p>",
                  _frame_html(tuning_frame(board.tuning, board.method_label))]
    for title, frame in (("Published numbers beside ours", published_frame(board)),
                         ("Hyperparameter provenance", provenance_frame(board))):
        if not frame.empty:
            parts += [f"<h2>{title}</h2>", _frame_html(frame)]
    if figures:
        parts.append("<h2>Figures</h2>")
    for name, fig in figures.items():
        caption = figure_caption(name, fig)
        parts.append(f"<figure><img alt='{_esc(caption)}' src='data:image/png;base64,{png_base64(fig)}'>"
                     f"<figcaption class='muted'>{_esc(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
