"""What a run's numbers depend on beyond its configuration: the code and the input files.

The run id pins the configuration. The fingerprint pins the rest: the suite's numeric core, each
plugin the run uses (method, dataset, noise model, architecture: its module, distribution, version
and a hash of its code, including the modules it imports from its own package), the sha256 of
every input file it reads (label files, dataset files), and where it computes (device type,
precision, determinism). A finished run whose stored fingerprint differs from the current one is
**stale**: ``noisybench run`` names it and reruns it only when asked.

Code is hashed as a normalised syntax tree (scheme 2), so what cannot change a number does not
count: comments, docstrings, formatting, and the dotted paths of the suite's own modules in import
statements (a module moved to another package hashes the same; the module it imports is hashed
where it matters). The **core** is derived from the imports: every module of the package that the
trainer, the data preparation and the noise realisation import, transitively, except plugin modules
(fingerprinted one by one) and the modules of :data:`NON_NUMERIC` (each with the reason it cannot
move a number). Its hash is over the modules' content hashes only, not their names.

Fingerprints recorded under scheme 1 (raw source bytes) are translated part by part before they are
compared (:mod:`noisybench.orchestration.fingerprint_legacy`); :func:`matches` is the one place that compares a
stored record with the fingerprint a plan expects. The suite's git commit and version are recorded
too (in each run's environment), but they do not make a run stale.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from noisybench.config import RunConfig
from noisybench.noise import parse_noise
from noisybench.registry import DATASETS, METHODS, MODELS, NOISES, Registry

#: The fingerprint scheme of new records (1: raw source bytes, named modules; 2: normalised syntax trees).
SCHEME = 2
#: Where the numeric core starts: the modules a run's numbers flow through.
CORE_ROOTS = ("noisybench.trainer", "noisybench.data.prepare", "noisybench.noise")
#: Packages whose modules are plugins, each fingerprinted on its own (a change stales only its runs).
PLUGIN_PACKAGES = ("noisybench.methods", "noisybench.datasets", "noisybench.noises", "noisybench.archs")
#: Modules the core imports that cannot change a number, with the reason. They are neither hashed nor
#: followed (what they import serves them). A module the core imports that is not listed here is hashed.
NON_NUMERIC: dict[str, str] = {
    "noisybench": "the package's front door: re-exports names, computes nothing",
    "noisybench.config": "the run configuration: every value it decides enters the run id",
    "noisybench.errors": "exception classes and their messages",
    "noisybench.facts": "declared facts that plan-time hyperparameter resolution reads; what they decide "
                        "enters the run id",
    "noisybench.registry": "name lookup and discovery; the plugins it returns are fingerprinted one by one",
    "noisybench.search_space": "tuning ranges read at plan time; the values they choose enter the run id",
    "noisybench.validate": "type and range checks that refuse bad input before anything runs",
}

#: Module name -> (source text, is a package), or None where no source file exists.
SourceReader = Callable[[str], "tuple[str, bool] | None"]


def fingerprint(run: RunConfig, memo: dict[Any, Any] | None = None) -> dict[str, Any]:
    """The fingerprint of ``run`` (JSON-ready), read from the files as they are now.

    ``memo`` shares the parts between the runs of one plan (each source file is read once per
    plan); :func:`digest` condenses a fingerprint to 16 hex digits.
    """
    memo = {} if memo is None else memo
    key = (run.method, run.dataset.name, json.dumps(run.dataset.params, sort_keys=True), run.data_root, run.noise,
           run.train.arch, run.train.device)
    if key not in memo:
        memo[key] = _fingerprint(run, memo)
    return memo[key]


def fingerprints(runs: list[RunConfig]) -> dict[str, str]:
    """Run id -> :func:`digest` of its fingerprint, for a whole plan (shared parts computed once)."""
    memo: dict[Any, Any] = {}
    return {run.run_id: digest(fingerprint(run, memo)) for run in runs}


def _fingerprint(run: RunConfig, memo: dict[Any, Any]) -> dict[str, Any]:
    spec = parse_noise(run.noise)
    dataset = DATASETS.get(run.dataset.name)(root=run.data_root, **run.dataset.params)
    noise_files = NOISES.get(spec.family).input_files(spec)

    read = memo.setdefault("read", _cached(None))  # each source file read once per plan (or run)

    def part(registry: Registry, name: str) -> dict[str, str]:
        if (registry.kind, name) not in memo:
            memo[(registry.kind, name)] = plugin(registry, name, read)
        return memo[(registry.kind, name)]

    return {
        "scheme": SCHEME,
        "core": memo.setdefault("core", core_hash(read)),
        "method": part(METHODS, run.method),
        "dataset": part(DATASETS, run.dataset.name),
        "noise": part(NOISES, spec.family),
        "arch": part(MODELS, run.train.arch or dataset.default_arch),
        "inputs": {str(p): file_hash(p) for p in [*_dataset_files(dataset), *noise_files]},
        "runtime": _runtime(run, memo),
    }


def _runtime(run: RunConfig, memo: dict[Any, Any]) -> dict[str, Any]:
    """Where and how the run computes on this machine (device type, precision, determinism): a CPU and a
    GPU run of one id, or a bf16 and an fp32 one, differ in numbers."""
    from noisybench.runtime import resolve_runtime

    key = ("runtime", run.train.device, str(run.train.amp), run.train.deterministic)
    if key not in memo:
        resolved = resolve_runtime(run.train)
        memo[key] = {"device": resolved.torch_device.type, "precision": resolved.precision,
                     "deterministic": resolved.deterministic}
    return memo[key]


def digest(fp: dict[str, Any]) -> str:
    """A 16-hex-digit hash of a fingerprint (what stores and plans compare)."""
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]


def differences(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """The top-level parts that differ (``method``, ``inputs``, ...); ``["unrecorded"]`` without an old one."""
    if not isinstance(old, dict):
        return ["unrecorded"]
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def current_digest(record: Mapping[str, Any] | None) -> str | None:
    """The digest of a stored record's fingerprint under the current scheme.

    A record of an older scheme is translated part by part
    (:func:`noisybench.orchestration.fingerprint_legacy.translate`); one that cannot be (a part its migration
    table does not know) keeps its stored digest, which no current plan expects: it is stale, as before.
    """
    if not isinstance(record, Mapping):
        return None
    stored = record.get("fingerprint_digest")
    fp = record.get("fingerprint")
    if isinstance(fp, dict) and fp.get("scheme", 1) != SCHEME:
        from noisybench.orchestration.fingerprint_legacy import translate

        translated = translate(record)
        if translated is not None:
            return digest(translated)
    return stored if isinstance(stored, str) else None


def matches(record: Mapping[str, Any] | None, expected: str | None) -> bool:
    """Whether a stored record's fingerprint is the ``expected`` digest (the plan's), under either scheme.

    The stored digest itself counts (a plan written by the code that wrote the record), and so does
    the record's translation to the current scheme (:func:`current_digest`).
    """
    if expected is None or not isinstance(record, Mapping):
        return False
    return expected in (record.get("fingerprint_digest"), current_digest(record))


def _dataset_files(dataset: Any) -> list[Path]:
    try:
        return list(dataset.input_files())
    except Exception:  # no data root yet (planning a grid whose data lives elsewhere): nothing to hash
        return []


# --- code hashes -------------------------------------------------------------------------------------------


def installed_source(name: str) -> tuple[str, bool] | None:
    """The source of module ``name`` as Python would import it now (None: no such module, or no source)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    origin = spec.origin if spec is not None else None
    if origin is None or not origin.endswith(".py") or not Path(origin).is_file():
        module = sys.modules.get(name)  # e.g. a plugin loaded from a file path
        origin = getattr(module, "__file__", None)
        if origin is None or not str(origin).endswith(".py") or not Path(origin).is_file():
            return None
    path = Path(origin)
    return path.read_text(encoding="utf-8", errors="replace"), path.name == "__init__.py"


class _CachedReader:
    """A reader remembering what it read (and the core it derived), for one computation: a plan, or a run."""

    def __init__(self, read: SourceReader) -> None:
        self.read = read
        self.cache: dict[str, tuple[str, bool] | None] = {}
        self.core: list[str] | None = None

    def __call__(self, name: str) -> tuple[str, bool] | None:
        if name not in self.cache:
            self.cache[name] = self.read(name)
        return self.cache[name]


def _cached(read: SourceReader | None) -> _CachedReader:
    """``read`` (default: the installed code, looked up when called) with a cache, unless it has one."""
    return read if isinstance(read, _CachedReader) else _CachedReader(read or installed_source)


Imports = tuple[tuple[int, str, tuple[str, ...]], ...]  # (level, module, names) of each import statement
#: sha256 of a source text -> (hash of its normal form, its import statements).
_ANALYSED: dict[str, tuple[str, Imports]] = {}


def _analyse(source: str) -> tuple[str, Imports]:
    key = hashlib.sha256(source.encode()).hexdigest()
    if key not in _ANALYSED:
        out: list[str] = []
        imports: list[tuple[int, str, tuple[str, ...]]] = []
        try:
            _dump(ast.parse(source), out, imports)
        except (SyntaxError, ValueError):  # code this Python cannot parse: pinned by its text, imports unknown
            out, imports = ["unparsed:", source], []
        _ANALYSED[key] = (hashlib.sha256("".join(out).encode()).hexdigest()[:16], tuple(imports))
    return _ANALYSED[key]


def module_hash(source: str) -> str:
    """16 hex digits of the normalised syntax tree of ``source`` (see :func:`normal_form`)."""
    return _analyse(source)[0]


def normal_form(source: str) -> str:
    """The code of ``source`` as a canonical text: its syntax tree without docstrings (nor any other bare
    string statement), comments, formatting, line numbers or the dotted paths of the suite's own modules in
    imports. Fields that are empty are left out, so the text does not change with the Python version."""
    out: list[str] = []
    _dump(ast.parse(source), out, [])
    return "".join(out)


_SKIPPED_FIELDS = frozenset({"kind", "type_comment"})


def _dump(node: ast.AST, out: list[str], imports: list[tuple[int, str, tuple[str, ...]]]) -> None:
    """Append the normal form of ``node`` to ``out`` and its import statements to ``imports`` (one pass)."""
    if type(node) is ast.ImportFrom or type(node) is ast.Import:
        node = _normalised_import(node, imports)
    out.append(type(node).__name__ + "(")
    for name in node._fields:
        value = getattr(node, name, None)
        if value is None or name in _SKIPPED_FIELDS:
            continue
        if type(value) is list:
            items = [item for item in value if not _is_bare_string(item)]
            if not items:
                continue
            out.append(name + "=[")
            for item in items:
                if isinstance(item, ast.AST):
                    _dump(item, out, imports)
                else:
                    out.append(repr(item))
                out.append(",")
            out.append("],")
        elif isinstance(value, ast.AST):
            out.append(name + "=")
            _dump(value, out, imports)
            out.append(",")
        else:
            out.append(f"{name}={value!r},")
    out.append(")")


def _normalised_import(node: ast.Import | ast.ImportFrom, imports: list[tuple[int, str, tuple[str, ...]]]) -> ast.AST:
    """Record an import statement; return it with the dotted paths of the suite's own modules made one."""
    names = tuple(alias.name for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        imports.append((node.level, node.module or "", names))
        if node.level or _is_suite_module(node.module or ""):
            return ast.ImportFrom(module="noisybench", names=node.names, level=0)
        return node
    imports.append((0, "", names))
    return ast.Import(names=[ast.alias(name="noisybench" if _is_suite_module(a.name) else a.name, asname=a.asname)
                             for a in node.names])


def _is_bare_string(stmt: Any) -> bool:
    return type(stmt) is ast.Expr and type(stmt.value) is ast.Constant and type(stmt.value.value) is str


def _is_suite_module(name: str) -> bool:
    return name == "noisybench" or name.startswith("noisybench.")


def imported_modules(name: str, read: SourceReader | None = None, within: tuple[str, ...] = ("noisybench",),
                     ) -> set[str]:
    """The modules of the packages ``within`` that ``name`` imports anywhere in its code (function bodies
    too), with their parent packages; relative imports resolved, modules without a source left out."""
    read = _cached(read)
    found = read(name)
    if found is None:
        return set()
    out: set[str] = set()
    for module in _import_candidates(name, *found):
        if not any(module == p or module.startswith(p + ".") for p in within if p):
            continue
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if read(prefix) is not None:
                out.add(prefix)
    return out


def _import_candidates(name: str, text: str, is_package: bool) -> set[str]:
    """Every dotted name an import statement of ``name`` may load (``from a import b``: ``a`` and ``a.b``)."""
    candidates: set[str] = set()
    for level, module, names in _analyse(text)[1]:
        if not level and not module:  # import a.b, c
            candidates.update(names)
            continue
        base = module
        if level:
            package = name.split(".") if is_package else name.split(".")[:-1]
            package = package[: len(package) - level + 1]
            base = ".".join([*package, module] if module else package)
        candidates.add(base)
        candidates.update(f"{base}.{alias}" for alias in names)
    return candidates


def _is_plugin_module(name: str) -> bool:
    return any(name.startswith(package + ".") for package in PLUGIN_PACKAGES)


def core_closure(read: SourceReader | None = None) -> dict[str, set[str]]:
    """The suite's modules reached from :data:`CORE_ROOTS` through imports, sorted into ``hashed`` (the
    core), ``non_numeric`` (listed in :data:`NON_NUMERIC`, not followed) and ``plugins`` (not followed).

    ``read`` gives a module's source (default: the installed code, :func:`installed_source`)."""
    read = _cached(read)
    out: dict[str, set[str]] = {"hashed": set(), "non_numeric": set(), "plugins": set()}
    todo, seen = list(CORE_ROOTS), set()
    while todo:
        name = todo.pop()
        if name in seen or not _is_suite_module(name):
            continue
        seen.add(name)
        if _is_plugin_module(name):
            out["plugins"].add(name)
        elif name in NON_NUMERIC:
            out["non_numeric"].add(name)
        else:
            out["hashed"].add(name)
            todo.extend(imported_modules(name, read))
    return out


def core_modules(read: SourceReader | None = None) -> list[str]:
    """The modules whose code decides every run's numbers (derived from the imports; see the module docstring)."""
    read = _cached(read)
    if read.core is None:
        read.core = sorted(core_closure(read)["hashed"])
    return read.core


def core_hash(read: SourceReader | None = None) -> str:
    """A hash of the core's normalised code: of its modules' content hashes, not of their names or places."""
    read = _cached(read)
    return _combine(module_hash(_text(name, read)) for name in core_modules(read))


def plugin(registry: Registry, name: str, read: SourceReader | None = None) -> dict[str, str]:
    """Module, distribution, version and code hash of the plugin ``name``."""
    origin = registry.origin(name)
    version = ""  # the suite's own plugins are pinned by their source; a release number alone changes nothing
    if origin.distribution and origin.distribution != "noisybench":
        try:
            version = importlib.metadata.version(origin.distribution)
        except importlib.metadata.PackageNotFoundError:
            version = ""
    return {"module": origin.module, "distribution": origin.distribution, "version": version,
            "source": source_hash(origin.module, read)}


def source_hash(module: str, read: SourceReader | None = None) -> str:
    """A hash of ``module``'s normalised code and of the modules it imports (transitively) from its own
    package, or from the suite outside the core and :data:`NON_NUMERIC` (content hashes only, no names)."""
    read = _cached(read)
    return _combine(module_hash(_text(name, read)) for name in plugin_modules(module, read))


def plugin_modules(module: str, read: SourceReader | None = None) -> set[str]:
    """``module`` and the modules its fingerprint covers with it (see :func:`source_hash`)."""
    read = _cached(read)
    package = module.rpartition(".")[0]
    core = set(core_modules(read)) | set(NON_NUMERIC)
    todo, seen = [module], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for imported in imported_modules(name, read, ("noisybench", package)):
            own = bool(package) and (imported == package or imported.startswith(package + "."))
            if own or (_is_suite_module(imported) and imported not in core):
                todo.append(imported)
    return seen


def _text(name: str, read: SourceReader) -> str:
    found = read(name)
    return found[0] if found is not None else ""


def _combine(hashes: Iterable[str]) -> str:
    """One hash of a set of module hashes; modules without code (a package's docstring-only ``__init__``)
    count for nothing, so moving a module into a new sub-package changes nothing."""
    empty = module_hash("")
    return hashlib.sha256("\n".join(sorted(h for h in hashes if h != empty)).encode()).hexdigest()[:16]


# --- input files -------------------------------------------------------------------------------------------

_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_hash(path: Path) -> str:
    """sha256 of a file (cached per process by path, size and modification time); "missing" if absent."""
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]
