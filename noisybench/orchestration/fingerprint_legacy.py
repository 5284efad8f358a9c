"""Fingerprints of an older scheme, translated so that runs recorded before a scheme change are not all stale.

Scheme 1 (the suite up to commit 70a96d9) hashed raw source bytes: the core as the concatenated source of a
hand-kept module list, each plugin as its module's source plus the modules of its package that it imports,
each with its dotted name. Scheme 2 (:mod:`noisybench.orchestration.fingerprint`) hashes normalised syntax trees, so the
values differ even where the code is the same. A scheme-1 record is translated part by part:

* the ``core`` and each plugin part through the **migration table** ``fingerprint_legacy.json``, which pairs
  the scheme-1 values of a released code state with the scheme-2 values of the equivalent code;
* a plugin part the table does not know, through the files as they are now: when the scheme-1 hash of the
  plugin's current files equals the recorded one, its code has not changed, and its scheme-2 hash is taken;
* ``inputs`` and ``runtime`` unchanged.

Then it is compared as any other fingerprint. A part that cannot be translated leaves the record stale,
as before. The table is written by this module's command (run from a git checkout)::

    python -m noisybench.orchestration.fingerprint_legacy migrate --legacy-commit 70a96d9

It recomputes the scheme-1 values from the files of ``--legacy-commit`` (``git show COMMIT:path``, with the
scheme-1 rules below and that commit's own core list), pairs them with the scheme-2 values of the working
tree, and replaces that commit's entry of the table (other entries are kept; rerunning is safe). Regenerate
it only for a working tree shown to give the same numbers as the legacy commit (e.g. the quick grid
bit-identical): the table declares the two code states equivalent.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from noisybench.orchestration import fingerprint as fp

TABLE = Path(__file__).with_name("fingerprint_legacy.json")
PLUGIN_PARTS = ("method", "dataset", "noise", "arch")
PASSED_THROUGH = ("inputs", "runtime")
#: Where a module's file lives in a checkout (pyproject's package-dir), most specific first.
LAYOUT = (("noisybench.methods", "methods"), ("noisybench.datasets", "datasets"), ("noisybench", "noisybench"))
#: The registering decorators of each fingerprint part.
DECORATORS = {"register_method": "method", "register_dataset": "dataset", "register_noise": "noise",
              "register_model": "arch"}

#: Module name -> its source bytes (b"" when there is none), under some code state.
BytesReader = Callable[[str], bytes]


# --- scheme 1 ----------------------------------------------------------------------------------------------


def legacy_core_hash(modules: list[str], read: BytesReader) -> str:
    """Scheme 1's core: sha256 over the concatenated sources of ``modules``, in their order."""
    h = hashlib.sha256()
    for name in modules:
        h.update(read(name))
    return h.hexdigest()[:16]


def legacy_source_hash(module: str, read: BytesReader) -> str:
    """Scheme 1's plugin source: sha256 over name and source of ``module`` and its package imports."""
    h = hashlib.sha256()
    for name in sorted(_legacy_package_imports(module, read)):
        h.update(name.encode() + b"\0" + read(name))
    return h.hexdigest()[:16]


def _legacy_package_imports(module: str, read: BytesReader, seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    seen.add(module)
    package = re.escape(module.rpartition(".")[0])
    text = read(module).decode(errors="replace")
    for helper in re.findall(rf"^\s*from\s+({package}\.\w+)\s+import", text, flags=re.M):
        if helper not in seen:
            _legacy_package_imports(helper, read, seen)
    return seen


def installed_bytes(name: str) -> bytes:
    """The source bytes of module ``name`` as Python would import it now (b"" without one), as scheme 1 read them."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return b""
    origin = spec.origin if spec is not None else None
    if origin is None or not Path(origin).is_file():
        return b""
    return Path(origin).read_bytes()


# --- translation -------------------------------------------------------------------------------------------


@functools.cache
def _table() -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(legacy core -> current core, key of a legacy plugin part -> current part), from every state of the table."""
    try:
        states = json.loads(TABLE.read_text()).get("states", {})
    except (OSError, ValueError):
        return {}, {}
    cores: dict[str, str] = {}
    parts: dict[str, dict[str, str]] = {}
    for state in states.values():
        cores[state["core"]["legacy"]] = state["core"]["current"]
        for entry in state["parts"]:
            parts[_part_key(entry["part"], entry.get("family", ""), entry["legacy"])] = entry["current"]
    return cores, parts


def _part_key(part: str, family: str, legacy: Mapping[str, Any]) -> str:
    return json.dumps([part, family, dict(legacy)], sort_keys=True)


def translate(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The scheme-2 fingerprint equivalent to a scheme-1 record's, or None where a part has no translation."""
    old = record.get("fingerprint")
    if not isinstance(old, dict) or "scheme" in old or set(old) != {"core", *PLUGIN_PARTS, *PASSED_THROUGH}:
        return None
    cores, parts = _table()
    new: dict[str, Any] = {"scheme": fp.SCHEME, "core": cores.get(old["core"])}
    config = record.get("config")
    noise = config.get("noise") if isinstance(config, dict) else None
    family = noise.partition(":")[0] if isinstance(noise, str) else ""
    for part in PLUGIN_PARTS:
        legacy = old[part]
        if not isinstance(legacy, dict):
            return None
        key = _part_key(part, family if part == "noise" else "", legacy)
        new[part] = parts.get(key) or _unchanged_plugin(json.dumps(legacy, sort_keys=True))
    if any(new[k] is None for k in ("core", *PLUGIN_PARTS)):
        return None
    new.update({k: old[k] for k in PASSED_THROUGH})
    return new


@functools.lru_cache(maxsize=1024)
def _unchanged_plugin(legacy_json: str) -> dict[str, str] | None:
    """The current part of a plugin whose files are byte for byte those a scheme-1 part recorded."""
    legacy = json.loads(legacy_json)
    module, source = legacy.get("module"), legacy.get("source")
    if not isinstance(module, str) or not module or not isinstance(source, str):
        return None
    try:
        if legacy_source_hash(module, installed_bytes) != source:
            return None
        return {**legacy, "source": fp.source_hash(module)}
    except (OSError, SyntaxError, ValueError):
        return None


def clear_caches() -> None:
    """Forget the table and the plugin files read (after the table or a plugin's files changed)."""
    _table.cache_clear()
    _unchanged_plugin.cache_clear()


# --- the migration table -----------------------------------------------------------------------------------


def git_reader(commit: str, repo: Path) -> BytesReader:
    """Module name -> its source bytes at ``commit`` of the checkout ``repo`` (layout of :data:`LAYOUT`)."""
    files = set(_git(repo, "ls-tree", "-r", "--name-only", commit).decode().splitlines())

    @functools.cache
    def read(name: str) -> bytes:
        path = module_path(name, files)
        return _git(repo, "show", f"{commit}:{path}") if path else b""

    read.files = files  # type: ignore[attr-defined]
    return read


def module_path(name: str, files: set[str]) -> str | None:
    """The file of module ``name`` among ``files`` (paths in a checkout), or None."""
    for package, folder in LAYOUT:
        if name == package or name.startswith(package + "."):
            rest = name[len(package):].lstrip(".").replace(".", "/")
            base = f"{folder}/{rest}" if rest else folder
            for path in (f"{base}.py", f"{base}/__init__.py"):
                if path in files:
                    return path
            return None
    return None


def legacy_core_modules(read: BytesReader) -> list[str]:
    """The ``CORE_MODULES`` tuple of the code state ``read`` gives (scheme 1 kept it by hand)."""
    tree = ast.parse(read("noisybench.fingerprint"))  # where scheme-1 code states kept it
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "CORE_MODULES" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise ValueError("the legacy noisybench/fingerprint.py has no CORE_MODULES: not a scheme-1 code state")


def legacy_registrations(read: BytesReader, files: set[str]) -> dict[tuple[str, str], str]:
    """(part, plugin name) -> module, for every ``@register_*("name")`` of the built-in plugins of a code state."""
    out: dict[tuple[str, str], str] = {}
    for path in sorted(files):
        module = _module_of(path)
        if module is None:
            continue
        for node in ast.walk(ast.parse(read(module))):
            if isinstance(node, ast.ClassDef | ast.FunctionDef):
                for deco in node.decorator_list:
                    name = getattr(getattr(deco, "func", None), "id", "")
                    if name in DECORATORS and deco.args and isinstance(deco.args[0], ast.Constant):
                        out[(DECORATORS[name], str(deco.args[0].value))] = module
    return out


def _module_of(path: str) -> str | None:
    if not path.endswith(".py"):
        return None
    for package, folder in LAYOUT:
        if path.startswith(folder + "/"):
            rest = path[len(folder) + 1:-3].split("/")
            rest = rest[:-1] if rest[-1] == "__init__" else rest
            return ".".join([package, *rest])
    return None


def migration_state(commit: str, repo: Path) -> dict[str, Any]:
    """The table entry pairing ``commit``'s scheme-1 values with the working tree's scheme-2 values."""
    from noisybench.registry import DATASETS, METHODS, MODELS, NOISES

    read = git_reader(commit, repo)
    registered = legacy_registrations(read, read.files)  # type: ignore[attr-defined]
    entries = []
    for part, registry in (("method", METHODS), ("dataset", DATASETS), ("noise", NOISES), ("arch", MODELS)):
        for name in registry.list():
            if registry.origin(name).distribution != "noisybench" or (part, name) not in registered:
                continue
            module = registered[(part, name)]
            legacy = {"module": module, "distribution": "noisybench", "version": "",
                      "source": legacy_source_hash(module, read)}
            entries.append({"part": part, "family": name if part == "noise" else "", "name": name,
                            "legacy": legacy, "current": fp.plugin(registry, name)})
    return {
        "legacy_commit": _git(repo, "rev-parse", commit).decode().strip(),
        "current_code": _describe_tree(repo),
        "core": {"legacy": legacy_core_hash(legacy_core_modules(read), read), "current": fp.core_hash()},
        "parts": entries,
    }


def _describe_tree(repo: Path) -> str:
    head = _git(repo, "rev-parse", "HEAD").decode().strip()
    dirty = _git(repo, "status", "--porcelain", "--untracked-files=no").strip()
    return head + (" with uncommitted changes" if dirty else "")


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True).stdout


def write_state(state: dict[str, Any], table: Path = TABLE) -> None:
    """Add ``state`` to the table (replacing the entry of the same legacy commit)."""
    try:
        data = json.loads(table.read_text())
    except (OSError, ValueError):
        data = {}
    data["about"] = ("scheme-1 fingerprint parts of released code states -> scheme-2 parts of the equivalent "
                     "code; written by `python -m noisybench.orchestration.fingerprint_legacy migrate`")
    data.setdefault("states", {})[state["legacy_commit"]] = state
    table.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    clear_caches()


def main(argv: list[str] | None = None) -> int:
    """``migrate --legacy-commit COMMIT [--repo DIR] [--table FILE]``: see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m noisybench.orchestration.fingerprint_legacy",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    migrate = sub.add_parser("migrate", help="pair a legacy commit's scheme-1 parts with the working tree's")
    migrate.add_argument("--legacy-commit", required=True, help="a commit of the code that wrote scheme-1 records")
    migrate.add_argument("--repo", default=".", help="the git checkout (default: the current directory)")
    migrate.add_argument("--table", default=str(TABLE), help=f"the table to update (default: {TABLE})")
    args = parser.parse_args(argv)
    try:
        state = migration_state(args.legacy_commit, Path(args.repo))
    except subprocess.CalledProcessError as exc:
        print(f"git failed: {exc.stderr.decode().strip()}", file=sys.stderr)
        return 2
    write_state(state, Path(args.table))
    print(f"{args.table}: {state['legacy_commit'][:12]} -> {state['current_code']}: core "
          f"{state['core']['legacy']} -> {state['core']['current']}, {len(state['parts'])} plugin parts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
