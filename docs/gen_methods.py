"""The method pages of the documentation, generated from each method module (used by ``docs/gen.py``).

A page shows the module's docstring, the class's facts (networks, cost hint, diagnostics), its hyperparameters
as :meth:`~noisybench.method.Method.default_hparams` resolves them on representative settings, its published
recipes (:meth:`~noisybench.method.Method.paper_recipe`, each value with its provenance and citation), its
documented deviations from the reference code, its ``REFERENCE_FUNCTIONS`` and its tuning search space. The
settings come from the registered datasets and noise models, resolved by the planner's own functions, so the
pages show what ``noisybench plan`` would.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable
from typing import Any

from noisybench.errors import NoisybenchError
from noisybench.facts import PAPER, SHARED
from noisybench.method import RECIPE_KEYS, HParam, Method
from noisybench.noise import parse_noise
from noisybench.plan import make_setting, noise_query, resolve_train
from noisybench.registry import DATASETS, METHODS, NOISES

#: Noise specs a method's published recipes are queried with, on every dataset family (where they apply).
PROBES = ("sym:0.5", "asym:0.4", "pairflip:0.45", "idn:0.4")
#: The quick board's setting and the CIFAR-10 leaderboard's, both under the shared protocol.
SHARED_SETTINGS = (("digits", "sym:0.5"), ("cifar10", "sym:0.5"))
SOURCE_SHORT = {"paper": "p", "paper-default": "pd", "suite": "s", "user": "u", "tuned": "t"}


# ---------------------------------------------------------------------------------------------- text
def cell(value: Any) -> str:
    """A value or text as a Markdown table cell."""
    if isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (list, dict, tuple)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return _escape(" ".join(text.split()), table=True)


def _toml(value: Any) -> str:
    """A value as a grid file writes it (``"pred"``, ``true``; ``null``: no value)."""
    return json.dumps(value) if isinstance(value, (str, bool)) or value is None else cell(value)


def _escape(text: str, table: bool = False) -> str:
    """``<`` outside code spans as ``&lt;`` (``<t, p>`` is not an HTML tag) and, in a table cell, ``|`` as ``\\|``
    (a ``|`` inside a code span stays as it is: the table extension keeps it in its cell)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = [p if p.startswith("`") else p.replace("<", "&lt;") for p in parts]
    return "".join(p if p.startswith("`") or not table else p.replace("|", "\\|") for p in out)


def inline(text: str) -> str:
    text = re.sub(r":(?:meth|class|func|attr|mod|data|exc|obj):`~[\w.]*?(\w+)`", r"`\1`", text)
    text = re.sub(r":(?:meth|class|func|attr|mod|data|exc|obj):`([\w.]+)`", r"`\1`", text)
    return _escape(text.replace("``", "`"))


def markdown(doc: str) -> str:
    """A reST/numpydoc docstring as Markdown: code spans, literal blocks, lists, section titles."""
    out: list[str] = []
    lines = doc.strip("\n").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and i + 1 < len(lines):
            out.append(inline(line.rstrip()[:-2].rstrip() + (":" if line.strip() != "::" else "")))
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            code = inspect.cleandoc("\n".join(block))
            out += ["", "```", *code.splitlines(), "```", ""]
            continue
        if re.fullmatch(r"[-=~]{3,}", line.strip()) and out and out[-1].strip():
            out[-1] = f"**{out[-1].strip()}**"
            out.append("")
        elif re.match(r"\s*(?:[-*]|\d+\.) ", line) and out and out[-1].strip() and not _in_list(out):
            out += ["", inline(line)]
        else:
            out.append(inline(line))
        i += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def _in_list(out: list[str]) -> bool:
    for line in reversed(out):
        if not line.strip():
            return False
        if re.match(r"\s*(?:[-*]|\d+\.) ", line):
            return True
    return False


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return inline(" ".join(doc.split("\n\n")[0].split()))


# ---------------------------------------------------------------------------------------------- settings
def builtin_methods() -> list[type[Method]]:
    """The methods this package ships (not local or third-party plugins), by registry name."""
    found = [METHODS.get(name) for name in METHODS.list()]
    return [m for m in found if m.__module__.startswith("noisybench.methods.")]


def _natural_key(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def family_datasets() -> list[Any]:
    """One built-in dataset per published family (the first by name), families in natural order."""
    chosen: dict[str, Any] = {}
    for name in DATASETS.list():
        cls = DATASETS.get(name)
        if cls.family and cls.__module__.startswith("noisybench.datasets.") and cls.family not in chosen:
            chosen[cls.family] = cls
    return [chosen[f] for f in sorted(chosen, key=_natural_key)]


def natural_noise(dataset_cls: Any) -> list[str]:
    """The noise a dataset is benchmarked with: its human labels, else synthetic noise where it declares a
    class map, else its own labels."""
    sets = [s for s in dataset_cls.human_label_sets if s != "clean"]
    if sets:
        return [f"human:{sets[0]}"]
    return ["sym:0.5", "asym:0.4"] if dataset_cls.asym_maps else ["none"]


def _applies(spec_text: str, dataset_cls: Any) -> Any:
    try:
        spec = parse_noise(spec_text)
        NOISES.get(spec.family).check(spec, dataset_cls)
    except NoisybenchError:
        return None
    return spec


def _setting(method: type[Method], dataset_cls: Any, spec: Any, protocol: str) -> tuple[Any, Any]:
    recipe = resolve_train(dataset_cls, method, {"protocol": protocol}, "docs", noise_query(dataset_cls, spec))
    num_classes = dataset_cls(root=None).num_classes
    return make_setting(dataset_cls, spec, num_classes, recipe), recipe


# ---------------------------------------------------------------------------------------------- recipes
def recipe_groups(method: type[Method]) -> list[tuple[str, list[str], dict[str, HParam]]]:
    """(family, noise specs, recipe) for every distinct published recipe, families in natural order; the specs
    are ``["*"]`` when the recipe applies to every noise queried on the family."""
    groups: list[tuple[str, list[str], dict[str, HParam]]] = []
    for dataset_cls in family_datasets():
        by_recipe: dict[str, tuple[list[str], dict[str, HParam]]] = {}
        valid = [(text, spec) for text in dict.fromkeys([*PROBES, *natural_noise(dataset_cls)])
                 if (spec := _applies(text, dataset_cls)) is not None]
        for text, spec in valid:
            published = method.paper_recipe(noise_query(dataset_cls, spec))
            if published:
                key = repr(sorted((k, repr(v)) for k, v in published.items()))
                by_recipe.setdefault(key, ([], published))[0].append(text)
        if len(by_recipe) == 1 and len(next(iter(by_recipe.values()))[0]) == len(valid):
            by_recipe = {key: (["*"], published) for key, (_, published) in by_recipe.items()}
        groups += [(dataset_cls.family, specs, published) for specs, published in by_recipe.values()]
    return groups


def _noise_label(specs: list[str]) -> str:
    return "any noise" if specs == ["*"] else ", ".join(f"`{s}`" for s in specs)


def _recipe_table(published: dict[str, HParam]) -> list[str]:
    """One row per (source, reference): the values that share them."""
    rows: dict[tuple[str, str], list[str]] = {}
    for key in [k for k in RECIPE_KEYS if k in published] + sorted(set(published) - set(RECIPE_KEYS)):
        hp = published[key]
        rows.setdefault((hp.source, hp.ref), []).append(f"`{key}` {cell(hp.value)}")
    return ["| values | source | reference |", "|---|---|---|"] + [
        f"| {', '.join(values)} | {source} | {cell(ref) or '–'} |" for (source, ref), values in rows.items()]


def _recipe_section(method: type[Method]) -> list[str]:
    groups = recipe_groups(method)
    out = ["## Published recipes (`protocol = \"paper\"`)", ""]
    if not groups:
        return out + [f"{method.display_name or method.name} declares no published recipe: under `protocol = "
                      "\"paper\"` it trains with each dataset's shared recipe, tagged `suite`, and "
                      "`noisybench plan` says so.", ""]
    families = {family for family, _, _ in groups}
    missing = [d.family for d in family_datasets() if d.family not in families]
    out += ["Each value with its provenance (`paper`: the paper's value for this setting; `paper-default`: the "
            "paper's or its official code's general default; `suite`: our choice) and, where the method gives one, "
            "its exact origin. Queried on every dataset family with " + ", ".join(f"`{p}`" for p in PROBES)
            + " and each dataset's own noise; each block lists the settings it applies to. Values a recipe leaves "
            "out come from the dataset's shared recipe.", ""]
    for family, specs, published in groups:
        out += [f"### {family}: {_noise_label(specs)}", "", *_recipe_table(published), ""]
    if missing:
        out += ["No published recipe (the shared recipe, tagged `suite`): " + ", ".join(missing) + ".", ""]
    return out


def _schedule(values: dict[str, Any]) -> str:
    schedule = values.get("schedule", "")
    if schedule == "step" and values.get("milestones"):
        return f"×{values.get('gamma', 0.1):g} at {', '.join(str(m) for m in values['milestones'])}"
    if values.get("phases"):
        return f"{len(values['phases'])} phases"
    return str(schedule)


def paper_recipe_summary() -> str:
    """One row per published recipe of every built-in method (the protocols page's overview)."""
    rows = ["| method | family | noise | arch | epochs | optimiser | lr schedule | batch | sources |",
            "|---|---|---|---|---|---|---|---|---|"]
    quiet = []
    for method in builtin_methods():
        groups = recipe_groups(method)
        if not groups:
            quiet.append(f"[{method.display_name or method.name}](methods/{method.name}.md)")
        for family, specs, published in groups:
            v = {k: hp.value for k, hp in published.items()}
            optimiser = " ".join(str(x) for x in (
                v.get("optimizer", ""), f"lr {v['lr']:g}" if "lr" in v else "",
                f"m {v['momentum']:g}" if v.get("momentum") else "",
                f"wd {v['weight_decay']:g}" if "weight_decay" in v else "") if x)
            sources = ", ".join(sorted({hp.source for hp in published.values()}))
            rows.append(f"| [{method.display_name or method.name}](methods/{method.name}.md) | {family} | "
                        f"{_noise_label(specs)} | {cell(v.get('arch', 'shared'))} | "
                        f"{cell(v.get('epochs', 'shared'))} | {cell(optimiser) or 'shared'} | "
                        f"{cell(_schedule(v)) or 'shared'} | {cell(v.get('batch_size', 'shared'))} | {sources} |")
    note = ["", "Without a published recipe (every dataset falls back to its shared recipe, tagged `suite`): "
            + ", ".join(quiet) + "."] if quiet else []
    return "\n".join(rows + note) + "\n"


# ---------------------------------------------------------------------------------------------- hyperparameters
def _hparam_settings(method: type[Method]) -> list[tuple[str, Any]]:
    """(label, setting) pairs: the shared settings, then each family's own noise under ``paper``."""
    out = []
    candidates = [(DATASETS.get(d), n, SHARED) for d, n in SHARED_SETTINGS if d in DATASETS]
    candidates += [(d, n, PAPER) for d in family_datasets() for n in natural_noise(d)]
    for dataset_cls, text, protocol in candidates:
        spec = _applies(text, dataset_cls)
        if spec is None:
            continue
        label = f"{dataset_cls.display_name or dataset_cls.name} `{text}` {protocol}"
        try:
            setting, _ = _setting(method, dataset_cls, spec, protocol)
        except NoisybenchError as exc:  # the planner refuses the method's recipe there: say so on the page
            setting = exc
        out.append((label, setting))
    return out


def _hparam_section(method: type[Method]) -> list[str]:
    out = ["## Hyperparameters", ""]
    if not method.hparams:
        return out + ["None.", ""]
    out += ["Generic defaults: " + ", ".join(f"`{k} = {_toml(v)}`" for k, v in method.hparams.items()) + ". Set any "
            f"of them in a grid's `[methods.{method.name}]` table (tagged `user`), or sweep them in "
            f"`[sweep.{method.name}]` (tagged `tuned`).", "",
            "Resolved per setting by `default_hparams` (what `noisybench plan` shows; settings with the same values "
            "share a column). Sources: " + ", ".join(f"{s} = `{k}`" for k, s in SOURCE_SHORT.items()) + ".", ""]
    columns: dict[str, tuple[list[str], dict[str, HParam]]] = {}
    for label, setting in _hparam_settings(method):
        try:
            if isinstance(setting, Exception):
                raise setting
            resolved = method.default_hparams(setting)
        except NoisybenchError as exc:  # a setting the planner or the method refuses
            resolved = {"(refused)": HParam(str(exc), "suite")}
        key = repr(sorted((k, repr(v.value), v.source) for k, v in resolved.items()))
        columns.setdefault(key, ([], resolved))[0].append(label)
    names = list(dict.fromkeys(k for _, resolved in columns.values() for k in resolved))
    out += ["| | " + " | ".join("<br>".join(labels) for labels, _ in columns.values()) + " |",
            "|---" * (len(columns) + 1) + "|"]
    for name in names:
        cells = [f"{cell(r[name].value)} ({SOURCE_SHORT.get(r[name].source, r[name].source)})" if name in r else "–"
                 for _, r in columns.values()]
        out.append(f"| `{name}` | " + " | ".join(cells) + " |")
    refs = dict.fromkeys(f"`{n}`: {cell(hp.ref)}" for _, r in columns.values() for n, hp in r.items() if hp.ref)
    return out + ([""] + [f"- {r}" for r in refs] if refs else []) + [""]


# ---------------------------------------------------------------------------------------------- other sections
def _diagnostics(method: type[Method]) -> str:
    found = []
    if method.refined_targets is not Method.refined_targets:
        found += ["`refined_acc`", "`refined_acc_noisy`"]
    if method.selection is not Method.selection:
        found += ["`selected_frac`", "`select_precision`", "`select_recall`"]
    if method.predict_heads is not Method.predict_heads:
        found.append("`test_acc_<head>` per extra head")
    return ", ".join(found) or "–"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _overridden(method: type[Method], hook: str) -> bool:
    return getattr(method, hook).__func__ is not getattr(Method, hook).__func__


def _reference_section(module: Any) -> list[str]:
    names = getattr(module, "REFERENCE_FUNCTIONS", ())
    if not names:
        return []
    out = ["## Reference functions", "",
           "The method's numerics as pure module-level functions (`REFERENCE_FUNCTIONS`): the training code calls "
           "exactly these, and external checks replay recorded vectors of the official code through them.", "",
           "| function | what it computes |", "|---|---|"]
    for entry in names:
        function = getattr(module, entry) if isinstance(entry, str) else entry
        name = entry if isinstance(entry, str) else function.__name__
        try:
            signature = str(inspect.signature(function)).split(" -> ")[0]
        except (TypeError, ValueError):
            signature = "(...)"
        signature = re.sub(r"'([^']*)'", r"\1", signature)
        short = module.__name__.rsplit(".", 1)[-1]
        out.append(f"| `{short}.{name}{cell(signature)}` | {cell(_first_line(function))} |")
    return out + [""]


def _search_section(method: type[Method]) -> list[str]:
    if not _overridden(method, "search_space"):
        return []
    out = ["## Search space (`[tune]`)", "", markdown(inspect.getdoc(method.search_space) or "").rstrip(), ""]
    spaces: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for label, setting in _hparam_settings(method):
        if isinstance(setting, Exception):
            continue
        space = method.search_space(setting)
        key = repr(sorted((k, d.describe(), d.source) for k, d in space.items()))
        spaces.setdefault(key, ([], space))[0].append(label)
    for labels, space in spaces.values():
        if len(spaces) > 1:
            out += ["On " + "; ".join(labels) + ":", ""]
        out += ["| hyperparameter | range | source |", "|---|---|---|"]
        out += [f"| `{k}` | {cell(d.describe())} | {d.source} |" for k, d in space.items()] or ["| – | – | – |"]
        out.append("")
    return out


def method_page(method: type[Method]) -> str:
    """The page of one method."""
    import sys

    module = sys.modules[method.__module__]
    title = method.display_name or method.name
    path = "methods/" + method.__module__.rsplit(".", 1)[-1] + ".py"
    out = [f"# {title}", "",
           f"<!-- generated from {method.__module__} by python docs/gen.py: edit the module, then rerun it -->", "",
           f"*{_first_line(method)}*", "",
           "| | |", "|---|---|",
           f"| registry name | `{method.name}` (`[grid] methods = [\"{method.name}\"]`) |",
           f"| source | `{method.__module__}` (`{path}`) |",
           f"| networks | {method.num_networks} |",
           f"| relative cost | {method.relative_cost:g} × CE (a scheduling hint) |",
           f"| per-epoch diagnostics | {_diagnostics(method)} |", "",
           "## Description", "", markdown(inspect.getdoc(module) or "").rstrip(), ""]
    out += _hparam_section(method)
    out += _recipe_section(method)
    if method.deviations:
        out += ["## Deviations from the reference code", "",
                "`noisybench plan` prints these under every configuration they apply to"
                + (f" ({_lower_first(_first_line(method.deviations_for).rstrip('.'))})"
                   if _overridden(method, "deviations_for") else "") + ".", ""]
        out += [f"- {inline(text)}" for text in method.deviations] + [""]
    out += _reference_section(module)
    out += _search_section(method)
    return "\n".join(out).rstrip() + "\n"


def methods_index(methods: Iterable[type[Method]]) -> str:
    """``docs/methods/index.md``: every built-in method with its one-line description."""
    out = ["# Methods", "", "<!-- generated by python docs/gen.py from the registered methods: rerun it -->", "",
           "Every built-in method, one page each, generated from its module: what it does, its hyperparameters "
           "with their provenance per setting, its published recipes, its deviations from the reference code. "
           "`noisybench list methods` lists the same, with any plugins you added.", "",
           "| method | name | networks | what it does | per-epoch diagnostics |", "|---|---|---|---|---|"]
    for m in methods:
        out.append(f"| [{m.display_name or m.name}]({m.name}.md) | `{m.name}` | {m.num_networks} | "
                   f"{cell(_first_line(m))} | {_diagnostics(m)} |")
    out += ["", "`refined_acc` is the share of training samples whose refined target (argmax) equals the clean "
            "label, `refined_acc_noisy` the same among the mislabelled samples; the `select_*` columns score the "
            "samples a method treats as clean against the truly clean ones (clean labels are known for synthetic "
            "noise and CIFAR-N; methods never see them). To add your own, see "
            "[Adding a method](../adding-a-method.md)."]
    return "\n".join(out) + "\n"
