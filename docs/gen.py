"""Generate the documentation pages and tables that describe code, so that they cannot drift from it.

Run from the repository root after changing a method, a noise model, a dataset, the CLI, an environment
variable, the method contract or a ``[train]`` key::

    python docs/gen.py            # rewrite the generated pages and blocks
    python docs/gen.py --check    # list what differs, change nothing (exit status 1 when something does)

It writes whole pages (``docs/methods/*.md``: one page per built-in method and their index; the CLI
reference ``docs/reference/cli.md``), the blocks between ``<!-- generated: NAME -->`` and
``<!-- end generated: NAME -->`` in the hand-written pages, and the methods section of the navigation in
``mkdocs.yml``. ``tests/test_docs.py`` fails when a committed page differs from what this produces.
Method pages come from each method module (``docs/gen_methods.py``); a method registered later
gets its page and its navigation entry by rerunning this script.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS = ROOT / "mkdocs.yml"
COMMAND = "python docs/gen.py"
sys.path.insert(0, str(DOCS))

from gen_methods import (  # noqa: E402  (docs/ is not a package: the helper module sits beside this script)
    builtin_methods,
    cell,
    inline,
    method_page,
    methods_index,
    paper_recipe_summary,
)

from noisybench.registry import DATASETS, NOISES  # noqa: E402

BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) [^\n]*-->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)",
                   re.S)
NAV = re.compile(r"(    # generated: methods [^\n]*\n)(?P<body>.*?)(    # end generated: methods\n)", re.S)


# ---------------------------------------------------------------------------------------------- CLI
def _argument(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest.upper()}`"
    takes = action.nargs != 0
    metavar = action.metavar or (action.dest.upper() if not action.choices else "")
    shown = ", ".join(f"`{s}{' ' + metavar if takes and metavar else ''}`" for s in action.option_strings)
    return shown


def _values(action: argparse.Action) -> str:
    parts = []
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        parts.append(" \\| ".join(f"`{c}`" for c in action.choices))
    if action.nargs == 0:
        parts.append("flag")
    elif isinstance(action, argparse._AppendAction):
        parts.append("repeatable")
    if action.default not in (None, False, [], argparse.SUPPRESS) and action.nargs != 0:
        parts.append(f"default `{action.default}`")
    return "; ".join(parts)


def _command_section(prog: str, parser: argparse.ArgumentParser, help_text: str, out: list[str]) -> None:
    """One ``## noisybench X`` section per (sub)command, recursively."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    arguments = [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
    if arguments or not subparsers:
        out += [f"## `{prog}`", "", cell(help_text[:1].upper() + help_text[1:]) + ".", ""]
        for group in parser._action_groups:
            actions = [a for a in group._group_actions if a in arguments]
            if not actions:
                continue
            title = {id(parser._positionals): "arguments", id(parser._optionals): "options"}.get(id(group), group.title)
            out += [f"*{title}*", "", "| argument | values | meaning |", "|---|---|---|"]
            out += [f"| {_argument(a)} | {_values(a)} | {cell(a.help or '')} |" for a in actions]
            out.append("")
    for sub in subparsers:
        helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
        for name, child in sub.choices.items():
            _command_section(f"{prog} {name}", child, helps.get(name, ""), out)


def cli_page() -> str:
    """``docs/reference/cli.md``: every command, argument, choice and default of ``noisybench``."""
    from noisybench.cli import build_parser

    out = ["# Command-line reference", "", _generated_note("noisybench.cli.build_parser()"), "",
           "Every command of `noisybench`, as its argument parser defines it (`noisybench COMMAND --help` prints "
           "the same). Bad input ends in one line `noisybench: error: ...` and exit status 2; an interrupted "
           "`run` exits 130.", ""]
    _command_section("noisybench", build_parser(), "", out)
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------- blocks
def noise_table() -> str:
    """Every built-in noise family with the facts it declares."""
    from noisybench.noise import NoiseModel

    rows = ["| spec | kind | class map | sampler | printed as | what it does |", "|---|---|---|---|---|---|"]
    models = [NOISES.get(name) for name in NOISES.list()]
    models = [m for m in models if m.__module__.startswith("noisybench.noises.")]
    for model in sorted(models, key=lambda m: (m.display_order, m.name)):
        arg = "r" if model.takes_rate else (model.example if model.needs_arg else "")
        spec = f"`{model.name}:{arg}`" if arg else f"`{model.name}`"
        if model.needs_arg and not model.takes_rate:
            spec = f"`{model.name}:NAME` (e.g. `{model.name}:{model.example}`)"
        description = model.description or inspect.getdoc(model) or inspect.getdoc(NoiseModel) or ""
        rows.append(f"| {spec} | {model.kind.value} | {model.class_map or '–'} | {model.sampler} | "
                    f"{model.display_name or '–'} | {cell(description)} |")
    return "\n".join(rows) + "\n"


def dataset_table() -> str:
    """Every built-in dataset: family, classes, protocols and shared recipe."""
    rows = ["| name | printed as | family | classes | protocols | shared recipe | human label sets | about |",
            "|---|---|---|---|---|---|---|---|"]
    for name in DATASETS.list():
        cls = DATASETS.get(name)
        if not cls.__module__.startswith("noisybench.datasets."):
            continue
        shared = {"arch": cls.default_arch, **cls.recipes.get("shared", {})}
        recipe = ", ".join(f"{k} {cell(shared[k])}" for k in ("arch", "epochs", "lr", "batch_size") if k in shared)
        protocols = ", ".join(f"`{p}`" for p in ["shared", "paper", *(p for p in cls.recipes if p != "shared")])
        sets = ", ".join(f"`{s}`" for s in cls.human_label_sets) or "–"
        about = inline((inspect.getdoc(cls) or "").split("\n\n")[0])
        rows.append(f"| `{name}` | {cls.display_name or name} | {cls.family or '–'} | {cls.num_classes} | "
                    f"{protocols} | {recipe} | {sets} | {cell(about)} |")
    return "\n".join(rows) + "\n"


#: Meanings of the ``[train]`` keys, where ``TrainConfig``'s source has no comment or a user needs more than it says.
TRAIN_MEANINGS = {
    "protocol": "`shared` (the dataset's recipe for every method), `paper` (each method's published recipe) or "
                "another recipe the dataset declares (`fast`, `cpu`): see Protocols",
    "arch": "registered network (`noisybench list models`); default: the dataset's",
    "arch_kwargs": "options of the network's builder (names and types checked at plan time), e.g. "
                   "`{pretrained = \"/path/weights.pth\"}`",
    "epochs": "epochs of the run (all phases together)",
    "batch_size": "training batch size",
    "optimizer": "`sgd` or `adam`",
    "lr": "initial learning rate",
    "momentum": "SGD momentum in [0, 1)",
    "nesterov": "Nesterov momentum",
    "weight_decay": "weight decay of every parameter (see `weight_decay_by_module`)",
    "schedule": "`cosine`, `step`, `constant`, `cosine-restarts` (PyTorch's `CosineAnnealingWarmRestarts`, period "
                "`restart_every`) or `linear-tail` (lr until epoch s = `milestones[0]`, then lr·(E − e)/(E − s): "
                "Co-teaching, JoCoR)",
    "milestones": "epochs at which the `step` schedule multiplies the rate by `gamma`",
    "gamma": "factor of the `step` schedule, in (0, 1]",
    "augment": "`true` (the dataset's default policy), `false`, or a policy the dataset declares: CIFAR `weak`, "
               "`weak+rot20`, `keras-shift`, `keras-shift+rot20`, `autoaugment-cutout16`, `randaugment-3-5`; digits "
               "and MNIST-1D `strong`",
    "val_fraction": "share of the training set held out, stratified by the observed label, as the noisy "
                    "validation split (0: train on everything; the `val` metric is then empty)",
    "mean_last_k": "k of the `mean-last` metric (mean test accuracy over the last k epochs)",
    "eval_batch_size": "batch size of evaluation passes (eval-mode logits do not depend on it)",
    "device": "`auto`, `cpu` or `cuda[:N]`",
    "amp": "`auto`: bf16 autocast of the forward passes on CUDA GPUs of compute capability ≥ 8.0, fp32 on older "
           "GPUs and on the CPU; `true`: bf16 anywhere; `false`: fp32. Losses and per-sample state are always fp32",
    "channels_last": "channels_last memory format of image nets, on CUDA only",
    "compile": "`torch.compile` of the networks' forward: `true` (inductor) or a backend (`eager`, `aot_eager`, "
               "`cudagraphs`); checkpoints are unchanged",
    "deterministic": "deterministic algorithms and cuDNN, `CUBLAS_WORKSPACE_CONFIG=:4096:8`, deterministic "
                     "global pooling on CUDA; `false` turns on `cudnn.benchmark` (faster, not repeatable)",
    "threads": "torch CPU threads of the run, never derived from the worker count (results depend on it)",
    "num_workers": "DataLoader workers of streamed datasets (Clothing1M, WebVision), kept across a run's passes",
    "lr_decay_per_step": "Keras' SGD `decay`: the epoch's rate divided by 1 + d·t, t the optimiser's steps so far",
    "grad_clip_norm": "each network's gradient norm clipped to this before its optimiser steps",
    "weight_decay_by_module": "`{fc1 = 0.02, kernels = 0.02}`: weight decay of chosen parameters, by dotted "
                              "parameter-name prefix or `kernels` (every weight of two or more dimensions); the "
                              "rest keep `weight_decay`. Keras' `l2(λ)` is weight decay 2λ",
    "normalize": "`false`: images scaled to [0, 1] without the per-channel normalisation (CIFAR)",
    "phases": "consecutive phases, `[{epochs = 120, momentum = 0.0}, {epochs = 100, lr = 1e-6}]`: each its own "
              "optimiser and schedule (new optimisers at each start, then `Method.begin_phase`); their epochs add "
              "up to `epochs`",
}


def _field_comments() -> dict[str, str]:
    from noisybench import config

    source = inspect.getsource(config.TrainConfig)
    found = re.findall(r"^    (\w+): [^=\n]+=[^#\n]*#\s*(.+)$", source, re.M)
    return {name: comment.strip() for name, comment in found}


def train_keys_table() -> str:
    """``[train]`` keys: default, whether they enter the run id, meaning."""
    from noisybench.config import ID_NEUTRAL_TRAIN_KEYS, RESULT_NEUTRAL_TRAIN_KEYS, TrainConfig

    comments = _field_comments()
    rows = ["| key | default | in the run id | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(TrainConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        meaning = TRAIN_MEANINGS.get(f.name) or comments.get(f.name)
        if not meaning:
            raise SystemExit(f"docs/gen.py: [train] key {f.name!r} has no meaning: add a trailing comment to its field "
                             "in noisybench/config.py (TrainConfig) or an entry to TRAIN_MEANINGS in docs/gen.py")
        if f.name in RESULT_NEUTRAL_TRAIN_KEYS:
            in_id = "no (cannot change a number)"
        elif f.name in ID_NEUTRAL_TRAIN_KEYS:
            in_id = f"unless `{cell(ID_NEUTRAL_TRAIN_KEYS[f.name])}`"
        else:
            in_id = "yes"
        rows.append(f"| `{f.name}` | `{cell(default)}` | {in_id} | {cell(meaning)} |")
    return "\n".join(rows) + "\n"


def fingerprint_facts() -> str:
    """What the fingerprint hashes and which core modules it leaves out (from the fingerprint module)."""
    from noisybench.orchestration import fingerprint

    lines = [f"- Scheme: {fingerprint.SCHEME} (normalised syntax trees).",
             "- The numeric core starts at " + ", ".join(f"`{m}`" for m in fingerprint.CORE_ROOTS)
             + " and follows their imports.",
             "- Plugin packages, each module fingerprinted on its own: "
             + ", ".join(f"`{m}`" for m in fingerprint.PLUGIN_PACKAGES) + ".", "",
             "| module the core imports but does not hash | why it cannot move a number |", "|---|---|"]
    lines += [f"| `{name}` | {cell(why)} |" for name, why in sorted(fingerprint.NON_NUMERIC.items())]
    return "\n".join(lines) + "\n"


def plan_example() -> str:
    """What ``noisybench plan`` prints for a one-configuration grid under ``protocol = "paper"``."""
    from noisybench.config import parse_grid
    from noisybench.plan import expand_grid, render_plan

    grid = parse_grid({"name": "example", "train": {"protocol": "paper"},
                       "grid": {"datasets": ["cifar10"], "methods": ["elr"], "noise": ["asym:0.4"], "seeds": [1]}},
                      source="example.toml")
    return "```text\n" + render_plan(expand_grid(grid)) + "```\n"


def _contract() -> str:
    from noisybench.conformance import contract_reference

    return contract_reference()


def _environment() -> str:
    from noisybench.envvars import markdown_table

    return markdown_table()


#: Block name -> what fills it. A hand-written page opts in with the block's markers.
BLOCKS: dict[str, Callable[[], str]] = {
    "contract": _contract,
    "environment": _environment,
    "noise-table": noise_table,
    "datasets": dataset_table,
    "train-keys": train_keys_table,
    "paper-recipes": paper_recipe_summary,
    "fingerprint": fingerprint_facts,
    "plan-example": plan_example,
}


def _generated_note(source: str) -> str:
    return f"<!-- generated from {source} by {COMMAND}: edit the code, then rerun it -->"


# ---------------------------------------------------------------------------------------------- assembly
def _fill_blocks(text: str, where: Path) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in BLOCKS:
            raise SystemExit(f"{where}: unknown generated block {name!r}; known: {', '.join(BLOCKS)}")
        return match.group(1) + BLOCKS[name]() + match.group(4)

    return BLOCK.sub(replace, text)


def _nav(methods: list[type]) -> str:
    text = MKDOCS.read_text()
    entries = "".join(f"    - {m.display_name or m.name}: methods/{m.name}.md\n" for m in methods)
    if not NAV.search(text):
        raise SystemExit("mkdocs.yml: the '# generated: methods' markers of the navigation are missing")
    return NAV.sub(lambda m: m.group(1) + entries + m.group(3), text)


def expected() -> dict[Path, str]:
    """Every generated file and every hand-written page with generated blocks, as they should read now."""
    methods = builtin_methods()
    pages: dict[Path, str] = {DOCS / "methods" / "index.md": methods_index(methods),
                              DOCS / "reference" / "cli.md": cli_page(), MKDOCS: _nav(methods)}
    pages.update({DOCS / "methods" / f"{m.name}.md": method_page(m) for m in methods})
    for path in sorted(DOCS.rglob("*.md")):
        if path not in pages:
            text = path.read_text()
            if BLOCK.search(text):
                pages[path] = _fill_blocks(text, path)
    return pages


def stale_pages(pages: dict[Path, str]) -> list[Path]:
    """Method pages of methods no longer registered."""
    return [p for p in sorted((DOCS / "methods").glob("*.md")) if p not in pages]


def drift() -> list[str]:
    """Paths (relative to the repository) whose committed text differs from what the code generates."""
    pages = expected()
    out = [str(p.relative_to(ROOT)) for p, text in pages.items() if not p.is_file() or p.read_text() != text]
    return out + [f"{p.relative_to(ROOT)} (no such method any more)" for p in stale_pages(pages)]


def write() -> list[str]:
    """Rewrite what drifted; return the paths written or removed."""
    pages = expected()
    changed = []
    for path, text in pages.items():
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(str(path.relative_to(ROOT)))
    for path in stale_pages(pages):
        path.unlink()
        changed.append(f"{path.relative_to(ROOT)} (removed)")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Generate the documentation that describes code.")
    parser.add_argument("--check", action="store_true", help="list what differs and exit 1; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        differ = drift()
        for path in differ:
            print(f"out of date: {path}")
        if differ:
            print(f"regenerate with: {COMMAND}")
        return 1 if differ else 0
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
