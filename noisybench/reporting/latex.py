"""Paper-ready LaTeX of a :class:`Leaderboard` (``landscape.md`` §7).

booktabs rules, ``\\multirow`` method header, dataset groups with ``\\cmidrule(lr)``, ``mean$\\pm$std`` with the
std in ``\\footnotesize``, best bold, second underlined, a dagger on cells not significantly different from the
column's best, and a caption stating N, ddof, the test, the correction, alpha and the metric. Needs
``booktabs`` and ``multirow``; ``--standalone`` wraps it in a ``standalone`` document (plus ``caption``).
"""

from __future__ import annotations

from noisybench.metrics import METRIC_TITLES
from noisybench.reporting.formats import fmt_num, n_summary, protocol_summary, provenance_summary
from noisybench.reporting.leaderboard import Cell, Column, Leaderboard
from noisybench.reporting.stats import MIN_SEEDS_TTEST

_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
MARKER = r"$^{\dagger}$"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in a name (``co_teaching`` -> ``co\\_teaching``, ``20%`` -> ``20\\%``)."""
    return "".join(_ESCAPES.get(ch, ch) for ch in str(text))


def _groups(columns: list[Column]) -> list[tuple[str, int]]:
    groups: list[tuple[str, int]] = []
    for col in columns:
        if groups and groups[-1][0] == col.dataset:
            groups[-1] = (col.dataset, groups[-1][1] + 1)
        else:
            groups.append((col.dataset, 1))
    return groups


def _header(board: Leaderboard) -> list[str]:
    groups = _groups(board.columns)
    total = len(board.columns)
    lines = []
    if board.leaky:
        lines.append(f" & \\multicolumn{{{total}}}{{c}}{{\\emph{{test-selected (leaky)}}}} \\\\")
        lines.append(f"\\cmidrule(lr){{2-{total + 1}}}")
    heads = " & ".join(f"\\multicolumn{{{n}}}{{c}}{{{latex_escape(name)}}}" for name, n in groups)
    lines.append(f"\\multirow{{2}}{{*}}{{Method}} & {heads} \\\\")
    rules, start = [], 2
    for _, n in groups:
        rules.append(f"\\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    lines.append(" ".join(rules))
    lines.append(" & " + " & ".join(latex_escape(c.label) for c in board.columns) + " \\\\")
    return lines


def latex_cell(cell: Cell | None, show_n: bool) -> str:
    """One cell: ``\\textbf{85.50}{\\footnotesize$\\pm$0.25}$^{\\dagger}$``, ``--`` when missing."""
    if cell is None:
        return "--"
    mean = fmt_num(cell.mean)
    if cell.place == 1:
        mean = f"\\textbf{{{mean}}}"
    elif cell.place == 2:
        mean = f"\\underline{{{mean}}}"
    std = fmt_num(cell.std).replace("–", "--")
    text = f"{mean}{{\\footnotesize$\\pm${std}}}"
    if cell.not_worse:
        text += MARKER
    if show_n:
        text += f"{{\\scriptsize\\,($n{{=}}{cell.n}$)}}"
    return text


def latex_legend(board: Leaderboard) -> str:
    """The caption legend (LaTeX)."""
    title = latex_escape(METRIC_TITLES.get(board.metric, board.metric))
    n_text = n_summary(board).replace("–", "--").replace("n = ", "$n = ").replace(" seed", "$ seed", 1)
    parts = [f"{title[:1].upper()}{title[1:]} (\\texttt{{{latex_escape(board.metric_name)}}}), in \\%.",
             f"Mean $\\pm$ sample std (ddof $= 1$) over seeds; {n_text}.",
             "Best per column in bold, second underlined.",
             f"{MARKER}: not significantly different from the column's best (two-sided paired $t$-test over "
             f"matched seeds, Holm correction per column, $\\alpha = {board.alpha:g}$).",
             ]
    if any(c.place > 1 and c.p_value is None for c in board.cells.values()):
        parts.append(f"No test (and no mark) with fewer than {MIN_SEEDS_TTEST} matched seeds.")
    if provenance_summary(board):
        parts.append(latex_escape(provenance_summary(board)))
    if board.protocols:
        parts.append(f"Protocol: {latex_escape(protocol_summary(board))}.")
    if board.leaky:
        parts.append("Test-selected numbers are optimistic and not valid for ranking.")
    return " ".join(parts)


def latex_tabular(board: Leaderboard) -> str:
    """The ``tabular`` environment alone."""
    show_n = len(board.n_values()) > 1
    lines = [f"\\begin{{tabular}}{{l{'c' * len(board.columns)}}}", "\\toprule", *_header(board), "\\midrule"]
    for method in board.methods:
        cells = " & ".join(latex_cell(board.cell(method, c), show_n) for c in board.columns)
        lines.append(f"{latex_escape(method)} & {cells} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines)


def published_tabular(board: Leaderboard) -> str:
    """A ``tabular`` placing each matching published value beside ours ('' when none match)."""
    if not board.published:
        return ""
    lines = ["\\begin{tabular}{lllrrll}", "\\toprule",
             "Method & Dataset & Noise & Ours & Paper & Paper metric & Source (tag) \\\\", "\\midrule"]
    for p in board.published:
        paper = f"{p['value']:g}" + (f"{{\\footnotesize$\\pm${p['std']:.2f}}}" if p["std"] is not None else "")
        ours = f"{fmt_num(p['ours_mean'])}{{\\footnotesize$\\pm${fmt_num(p['ours_std']).replace('–', '--')}}}"
        lines.append(" & ".join([latex_escape(p["method"]), latex_escape(p["dataset"]), latex_escape(p["noise"]), ours,
                                 paper + ("" if p["kind"] == "published" else "$^{o}$"), latex_escape(p["metric"]),
                                 f"{latex_escape(p['source'])} ({latex_escape(p['tag'])})"]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if any(p["kind"] != "published" for p in board.published):
        lines.append("\\par{\\footnotesize $^{o}$ published, other protocol or metric: not comparable.}")
    return "\n".join(lines)


def render_latex(board: Leaderboard, caption: str | None = None, label: str | None = "tab:noisybench",
                 standalone: bool = False) -> str:
    """LaTeX of the leaderboard.

    Parameters
    ----------
    board
        The leaderboard.
    caption
        Text put before the generated legend; it is LaTeX (not escaped).
    label
        ``\\label`` of the table (None for none).
    standalone
        Return a compilable ``standalone`` document (needs the ``standalone``, ``booktabs``, ``multirow`` and
        ``caption`` packages) instead of a ``table`` float.
    """
    full_caption = (caption.strip() + " " if caption else "") + latex_legend(board)
    label_line = f"\\label{{{label}}}" if label else ""
    tabular = latex_tabular(board)
    if not standalone:
        body = ["\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{full_caption}}}"]
        body += [label_line] if label_line else []
        body += [tabular, "\\end{table}"]
        published = published_tabular(board)
        if published:
            body += ["", "\\begin{table}[t]", "\\centering", "\\scriptsize",
                     "\\caption{Published values (\\%) beside ours, with the paper's metric and provenance tag.}",
                     published, "\\end{table}"]
        return "\n".join(body) + "\n"
    published = published_tabular(board)
    lines = ["\\documentclass[border=6pt]{standalone}", "\\usepackage{booktabs}", "\\usepackage{multirow}",
             "\\usepackage{caption}", "\\captionsetup{font=small,labelfont=bf}", "\\newsavebox{\\nbtable}",
             "\\newsavebox{\\nbpublished}", "\\newlength{\\nbwidth}", "\\begin{document}", "\\small",
             "\\sbox{\\nbtable}{%", tabular + "%", "}", "\\setlength{\\nbwidth}{\\wd\\nbtable}"]
    if published:
        lines += ["\\sbox{\\nbpublished}{\\scriptsize%", published + "%", "}",
                  "\\ifdim\\wd\\nbpublished>\\nbwidth\\setlength{\\nbwidth}{\\wd\\nbpublished}\\fi"]
    lines += ["\\begin{minipage}{\\nbwidth}", "\\centering", f"\\captionof{{table}}{{{full_caption}}}"]
    lines += [label_line] if label_line else []
    lines += ["\\usebox{\\nbtable}"]
    if published:
        lines += ["", "\\bigskip", "Published values beside ours:\\par", "\\usebox{\\nbpublished}"]
    lines += ["\\end{minipage}", "\\end{document}"]
    return "\n".join(lines) + "\n"
