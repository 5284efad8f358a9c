"""Paper-ready LaTeX of a :class:`Leaderboard`, in the booktabs style of noisy-label papers.

booktabs rules, dataset groups with ``\\cmidrule(lr)``, display names (CE, DivideMix, CIFAR-10, Sym. 50 %),
``mean ± std`` split over an ``r@{}l`` column pair so means align on the decimal point, best bold, second
underlined (3 or more methods only), a dagger on cells not significantly different from the setting's best, a
double dagger on cells that were not tested, and a caption stating N, the std, the test, the correction, alpha and
the metric. Three layouts (:data:`LAYOUTS`): ``wide`` (settings as columns), ``long`` (transposed: settings as
rows, methods as columns) and ``per-dataset`` (one wide table per dataset). The fragment starts with a ``%``
comment naming the packages it needs (:func:`required_packages`).
"""

from __future__ import annotations

from dataclasses import dataclass

from noisybench.metrics import METRIC_TITLES
from noisybench.reporting.formats import fmt_num, protocol_summary, provenance_summary
from noisybench.reporting.leaderboard import Cell, Column, Leaderboard
from noisybench.reporting.stats import MIN_SEEDS_TTEST
from noisybench.reporting.tuning import sentence

_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
MARKER = r"$^{\dagger}$"
NOT_TESTED = r"$^{\ddagger}$"
LAYOUTS = ("wide", "long", "per-dataset")
FLOATS = ("table", "table*")


@dataclass
class LatexOptions:
    """How :func:`render_latex` lays the table out.

    Attributes
    ----------
    caption
        Plain text put before the generated legend; LaTeX's special characters are escaped.
    label
        ``\\label`` of the table (None for none); ``per-dataset`` appends ``-<dataset>``.
    standalone
        A compilable ``standalone`` document instead of a float.
    layout
        ``wide``, ``long`` or ``per-dataset``.
    width
        A maximum width (``\\linewidth``, ``0.9\\textwidth``): wider tables are scaled down to it with graphicx's
        ``\\resizebox``; narrower ones are left alone.
    float_env
        ``table`` or ``table*`` (full width in two-column documents).
    """

    caption: str | None = None
    label: str | None = "tab:noisybench"
    standalone: bool = False
    layout: str = "wide"
    width: str | None = None
    float_env: str = "table"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in a name (``co_teaching`` -> ``co\\_teaching``, ``20%`` -> ``20\\%``)."""
    return "".join(_ESCAPES.get(ch, ch) for ch in str(text))


def setting_tex(text: str) -> str:
    """A setting name in LaTeX: ``Sym. 50 %`` -> ``Sym.~50\\,\\%`` (no line break, thin space before %)."""
    return latex_escape(text).replace(r" \%", r"\,\%").replace(". ", ".~")


def required_packages(opts: LatexOptions) -> list[tuple[str, str]]:
    """``(package, why)`` for every package the fragment needs in the preamble."""
    packages = [("booktabs", "\\toprule, \\midrule, \\cmidrule, \\bottomrule")]
    if opts.width:
        packages.append(("graphicx", f"\\resizebox (--width {opts.width})"))
    return packages


def _groups(columns: list[Column]) -> list[tuple[str, int]]:
    groups: list[tuple[str, int]] = []
    for col in columns:
        if groups and groups[-1][0] == col.dataset_label:
            groups[-1] = (col.dataset_label, groups[-1][1] + 1)
        else:
            groups.append((col.dataset_label, 1))
    return groups


def cell_parts(cell: Cell | None, show_n: bool) -> str:
    """One cell as two ``&``-separated parts: ``\\textbf{85.50} & {\\scriptsize$\\pm$0.25}$^{\\dagger}$``."""
    if cell is None:
        return "\\multicolumn{2}{c}{--}"
    mean = fmt_num(cell.mean)
    if cell.best:
        mean = f"\\textbf{{{mean}}}"
    elif cell.second:
        mean = f"\\underline{{{mean}}}"
    std = "" if cell.n < 2 else f"{{\\scriptsize$\\pm${fmt_num(cell.std)}}}"
    mark = MARKER if cell.not_worse else NOT_TESTED if cell.not_tested else ""
    n = f"{{\\scriptsize\\,($n{{=}}{cell.n}$)}}" if show_n else ""
    return f"{mean} & {std}{mark}{n}"


def _n_text(board: Leaderboard) -> str:
    ns = board.n_values()
    if len(ns) == 1:
        return f"$n = {ns[0]}$ seed{'s' if ns[0] != 1 else ''}"
    return f"$n = {ns[0]}$--${ns[-1]}$ seeds ($n$ shown per cell)"


def latex_legend(board: Leaderboard) -> str:
    """The caption legend (LaTeX): metric, n, the std, and only the marks that the table uses."""
    title = latex_escape(METRIC_TITLES.get(board.metric, board.metric))
    cells = list(board.cells.values())
    parts = [f"{title[:1].upper()}{title[1:]} (\\texttt{{{latex_escape(board.metric_name)}}}), in \\%.",
             f"Mean $\\pm$ sample standard deviation over {_n_text(board)}.",
             "Best per setting in bold" + (", second underlined." if board.shows_second() else ".")]
    if any(c.p_value is not None for c in cells):
        parts.append(f"{MARKER}: not significantly different from the setting's best (two-sided paired $t$-test "
                     f"over matched seeds, Holm correction per setting, $\\alpha = {board.alpha:g}$); "
                     "unmarked: significantly worse.")
    if any(c.not_tested for c in cells):
        parts.append(f"{NOT_TESTED}: not tested (fewer than {MIN_SEEDS_TTEST} seeds matched with the best).")
    if board.protocols:
        parts.append(f"Protocol: {latex_escape(protocol_summary(board))}.")
    if board.tuning is not None:
        parts.append(latex_escape(sentence(board.tuning, board.method_label)))
    if board.leaky:
        parts.append("Test-selected numbers are optimistic and not valid for ranking.")
    return " ".join(parts)


def _leaky_row(board: Leaderboard, span: int) -> list[str]:
    if not board.leaky:
        return []
    return [f" & \\multicolumn{{{span}}}{{c}}{{\\emph{{test-selected (leaky)}}}} \\\\",
            f"\\cmidrule(lr){{2-{span + 1}}}"]


def wide_tabular(board: Leaderboard, columns: list[Column] | None = None) -> str:
    """Methods as rows, (dataset, setting) as columns; each setting spans an ``r@{}l`` pair."""
    columns = board.columns if columns is None else columns
    show_n = len(board.n_values()) > 1
    lines = [f"\\begin{{tabular}}{{@{{}}l{'r@{}l' * len(columns)}@{{}}}}", "\\toprule",
             *_leaky_row(board, 2 * len(columns))]
    heads, rules, start = [], [], 2
    for name, n in _groups(columns):
        heads.append(f"\\multicolumn{{{2 * n}}}{{c}}{{{latex_escape(name)}}}")
        rules.append(f"\\cmidrule(lr){{{start}-{start + 2 * n - 1}}}")
        start += 2 * n
    lines += [" & " + " & ".join(heads) + " \\\\", " ".join(rules),
              "Method & " + " & ".join(f"\\multicolumn{{2}}{{c}}{{{setting_tex(c.label)}}}" for c in columns)
              + " \\\\", "\\midrule"]
    for method in board.methods:
        if any(board.cell(method, c) for c in columns):
            cells = " & ".join(cell_parts(board.cell(method, c), show_n) for c in columns)
            lines.append(f"{latex_escape(board.method_label(method))} & {cells} \\\\")
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"])


def long_tabular(board: Leaderboard) -> str:
    """Transposed: settings as rows grouped under dataset headings, methods as columns."""
    show_n = len(board.n_values()) > 1
    span = 2 * len(board.methods)
    heads = " & ".join(f"\\multicolumn{{2}}{{c}}{{{latex_escape(board.method_label(m))}}}" for m in board.methods)
    lines = [f"\\begin{{tabular}}{{@{{}}l{'r@{}l' * len(board.methods)}@{{}}}}", "\\toprule",
             *_leaky_row(board, span), f"Setting & {heads} \\\\"]
    for name, _ in _groups(board.columns):
        lines += ["\\midrule", f"\\multicolumn{{{span + 1}}}{{@{{}}l}}{{\\emph{{{latex_escape(name)}}}}} \\\\"]
        for col in [c for c in board.columns if c.dataset_label == name]:
            cells = " & ".join(cell_parts(board.cell(m, col), show_n) for m in board.methods)
            lines.append(f"{setting_tex(col.label)} & {cells} \\\\")
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"])


def latex_tabular(board: Leaderboard, layout: str = "wide") -> str:
    """The ``tabular`` environment(s) alone (``per-dataset``: one per dataset, separated by blank lines)."""
    if layout == "long":
        return long_tabular(board)
    if layout == "per-dataset":
        return "\n\n".join(wide_tabular(board, cols) for _, cols in _dataset_columns(board))
    return wide_tabular(board)


def _dataset_columns(board: Leaderboard) -> list[tuple[str, list[Column]]]:
    return [(d, [c for c in board.columns if c.dataset == d]) for d in board.datasets()]


def published_tabular(board: Leaderboard) -> str:
    """A ``tabular`` placing each matching published value beside ours ('' when none match)."""
    if not board.published:
        return ""
    lines = ["\\begin{tabular}{lllrrll}", "\\toprule",
             "Method & Dataset & Noise & Ours & Paper & Paper metric & Source (tag) \\\\", "\\midrule"]
    for p in board.published:
        paper = f"{p['value']:g}" + (f"{{\\footnotesize$\\pm${p['std']:.2f}}}" if p["std"] is not None else "")
        ours = f"{fmt_num(p['ours_mean'])}{{\\footnotesize$\\pm${fmt_num(p['ours_std']).replace('–', '--')}}}"
        lines.append(" & ".join([latex_escape(board.method_label(p["method"])), latex_escape(p["dataset"]),
                                 latex_escape(p["noise"]), ours, paper + ("" if p["kind"] == "published" else "$^{o}$"),
                                 latex_escape(p["metric"]),
                                 f"{latex_escape(p['source'])} ({latex_escape(p['tag'])})"]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if any(p["kind"] != "published" for p in board.published):
        lines.append("\\par{\\footnotesize $^{o}$ published, other protocol or metric: not comparable.}")
    return "\n".join(lines)


def _fit(tabular: str, width: str | None) -> str:
    """Scale ``tabular`` down to ``width`` when it is wider (never up); unchanged without a width."""
    if not width:
        return tabular
    return (f"\\setbox0=\\hbox{{%\n{tabular}%\n}}%\n"
            f"\\ifdim\\wd0>{width}\\resizebox{{{width}}}{{!}}{{\\box0}}\\else\\box0\\fi")


def _blocks(board: Leaderboard, opts: LatexOptions) -> list[tuple[str, str | None, str]]:
    """``(caption, label, tabular)`` of every table the layout makes."""
    user = opts.caption.strip() if opts.caption else ""
    user = latex_escape(user + ("" if not user or user[-1] in ".!?:" else ".")) + " " if user else ""
    legend = latex_legend(board)
    if opts.layout != "per-dataset":
        return [(user + legend, opts.label, latex_tabular(board, opts.layout))]
    return [(f"{user}{latex_escape(cols[0].dataset_label)}. {legend}",
             f"{opts.label}-{dataset}" if opts.label else None, wide_tabular(board, cols))
            for dataset, cols in _dataset_columns(board)]


def _header_comment(board: Leaderboard, opts: LatexOptions) -> list[str]:
    lines = [f"% noisybench leaderboard (--layout {opts.layout}). Preamble packages needed:"]
    lines += [f"%   \\usepackage{{{name}}}  % {why}" for name, why in required_packages(opts)]
    if provenance_summary(board):
        lines.append(f"% {provenance_summary(board)}")
    return lines


def render_latex(board: Leaderboard, options: LatexOptions | None = None) -> str:
    """LaTeX of the leaderboard: a commented fragment of ``table`` floats, or a ``standalone`` document.

    Parameters
    ----------
    board
        The leaderboard.
    options
        Layout, width, float, caption and label (:class:`LatexOptions`).
    """
    opts = options or LatexOptions()
    if opts.standalone:
        return _standalone(board, opts)
    body = _header_comment(board, opts)
    for caption, label, tabular in _blocks(board, opts):
        body += [f"\\begin{{{opts.float_env}}}[t]", "\\centering", "\\small", f"\\caption{{{caption}}}"]
        body += [f"\\label{{{label}}}"] if label else []
        body += ["\\smallskip", "\\setlength{\\tabcolsep}{3pt}", _fit(tabular, opts.width),
                 f"\\end{{{opts.float_env}}}", ""]
    published = published_tabular(board)
    if published:
        body += [f"\\begin{{{opts.float_env}}}[t]", "\\centering", "\\scriptsize",
                 "\\caption{Published values (\\%) beside ours, with the paper's metric and provenance tag.}",
                 _fit(published, opts.width), f"\\end{{{opts.float_env}}}", ""]
    return "\n".join(body)


def _standalone(board: Leaderboard, opts: LatexOptions) -> str:
    """A ``standalone`` document: each table in a minipage as wide as the table, caption above."""
    lines = ["\\documentclass[border=6pt]{standalone}", "\\usepackage{booktabs}", "\\usepackage{graphicx}",
             "\\usepackage{caption}", "\\captionsetup{font=small,labelfont=bf}", "\\newsavebox{\\nbtable}",
             "\\newlength{\\nbwidth}", "\\begin{document}", "\\small", "\\begin{tabular}{@{}c@{}}"]
    blocks = [(c, lab, t) for c, lab, t in _blocks(board, opts)]
    published = published_tabular(board)
    if published:
        blocks.append(("Published values (\\%) beside ours, with the paper's metric and provenance tag.", None,
                       "{\\scriptsize " + published + "}"))
    for i, (caption, label, tabular) in enumerate(blocks):
        lines += ["\\\\[12pt]"] if i else []
        lines += ["\\sbox{\\nbtable}{\\setlength{\\tabcolsep}{4pt}%", tabular + "%", "}",
                  "\\setlength{\\nbwidth}{\\wd\\nbtable}\\ifdim\\nbwidth<20em\\setlength{\\nbwidth}{20em}\\fi",
                  "\\begin{minipage}{\\nbwidth}", "\\centering", f"\\captionof{{table}}{{{caption}}}"]
        lines += [f"\\label{{{label}}}"] if label else []
        lines += ["\\usebox{\\nbtable}", "\\end{minipage}"]
    lines += ["\\end{tabular}", "\\end{document}"]
    return "\n".join(lines) + "\n"
