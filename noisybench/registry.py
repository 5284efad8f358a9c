"""Name registries for methods, datasets, noise models and architectures.

Modelled on mmengine (duplicates are refused) and timm (``list_*("pattern*")`` wildcards,
``create_*(name, **kw)``). Built-in plugins are discovered lazily the first time a registry is
queried: every module of ``noisybench.methods``, ``noisybench.datasets``, ``noisybench.archs``
and ``noisybench.noises`` is imported. Third-party packages add plugins through the entry-point
groups ``noisybench.methods``, ``noisybench.datasets``, ``noisybench.noises`` and
``noisybench.models``, and users load every module of their own folders (:mod:`noisybench.plugins`).
Each plugin's origin (module, distribution or file) is recorded; a name claimed by two plugins,
from any two origins, is an error naming both.

A plugin module that fails to import (a syntax error, a name error, a missing dependency) breaks
nothing else: it becomes a :class:`BrokenPlugin` placeholder, listed by ``noisybench list`` with
its file, line and error, and any lookup of its name raises :class:`BrokenPluginError` with that
message. Its file's name (and every name it had registered before failing) is the placeholder's
name. The rule is the same for built-ins, entry points and local folders.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from noisybench.errors import NoisybenchError, UnknownNameError, suggest

T = TypeVar("T")


@dataclass(frozen=True)
class Origin:
    """Where a plugin comes from: its module, and the distribution that installed it."""

    module: str
    distribution: str = ""
    entry_point: str = ""
    file: str = ""  # local plugins: the file that defines it

    def describe(self) -> str:
        """``module (distribution)``, or a local plugin's file, for listings and messages."""
        if self.file:
            return f"{self.file} (local)"
        dist = f" ({self.distribution})" if self.distribution else ""
        return f"{self.module}{dist}"


class PluginError(NoisybenchError):
    """Two plugins claim one name, or a plugin breaks the registry's rules."""


class BrokenPluginError(PluginError, UnknownNameError):
    """The name belongs to a plugin whose module failed to import."""


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin whose module failed to import: its name, where it failed and why."""

    name: str
    kind: str
    source: str  # the module, or ``name = target`` of an entry point
    file: str
    line: int | None
    error: str

    def where(self) -> str:
        """``FILE, line N`` (or the module when no file is known)."""
        if not self.file:
            return self.source
        return f"{self.file}, line {self.line}" if self.line else self.file

    def message(self) -> str:
        """The one-line refusal of a lookup of this plugin."""
        return (f"{self.kind} {self.name!r} cannot be used: its plugin failed to load ({self.where()}: {self.error}); "
                "fix that file (`noisybench list` shows every broken plugin)")


class Registry(Generic[T]):
    """A mapping from names to plugins that refuses duplicate names and records each one's origin.

    Parameters
    ----------
    kind
        What the registry holds, used in messages ("method", "dataset", ...).
    packages
        Packages whose every module (except ``_private`` ones) is imported before the first
        lookup: importing them registers the built-ins, so a new file is found without a list.
    entry_point_group
        Entry-point group of third-party plugins (``noisybench.methods``, ...); each target is
        imported (and so registers itself, or is registered under the entry point's name).
    """

    def __init__(self, kind: str, packages: tuple[str, ...] = (), entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origins: dict[str, Origin] = {}
        self._packages = packages
        self._entry_point_group = entry_point_group
        self._broken: dict[str, BrokenPlugin] = {}
        self._loaded = False
        self._loading_dist = ""

    def register(self, name: str | None = None, *, force: bool = False) -> Callable[[T], T]:
        """Return a decorator that registers its target under ``name``.

        Without ``name`` the target's ``name`` attribute, else its ``__name__``, is used.
        A name that is taken raises :class:`PluginError` naming both plugins unless ``force``.
        """

        def decorator(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__
            self.add(key, obj, force=force)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, force: bool = False, origin: Origin | None = None) -> None:
        """Register ``obj`` under ``name``; refuse a taken name unless ``force``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        module = getattr(obj, "__module__", "?")
        origin = origin or _origin_of(module, self._loading_dist)
        if name in self._items and not force and self._items[name] is not obj:
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by {_describe(self._items[name])}"
                f"{_dist(self._origins[name])} and by {_describe(obj)}{_dist(origin)}; "
                "rename one of them (or pass force=True to replace on purpose)"
            )
        self._broken.pop(name, None)
        if hasattr(obj, "name") and isinstance(obj, type):
            # Plugins registered under an explicit name learn it, so runs record one name.
            obj.name = name  # type: ignore[attr-defined]
        self._items[name] = obj
        self._origins[name] = origin

    def get(self, name: str) -> T:
        """Return the plugin called ``name``; unknown names raise with close matches."""
        self._ensure_loaded()
        try:
            return self._items[name]
        except (KeyError, TypeError):
            if name in self._broken:
                raise BrokenPluginError(self._broken[name].message()) from None
            hint = suggest(str(name), self._items)
            known = ", ".join(sorted(self._items))
            broken = (f" ({len(self._broken)} {self.kind} plugin(s) failed to load: {', '.join(sorted(self._broken))})"
                      if self._broken else "")
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {known}.{broken} "
                f"`noisybench list {self.kind}s` lists them."
            ) from None

    def origin(self, name: str) -> Origin:
        """Where the plugin ``name`` comes from."""
        self.get(name)
        return self._origins[name]

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names of working plugins matching the shell-style ``pattern`` (``"*mix*"``)."""
        self._ensure_loaded()
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def broken(self, pattern: str = "*") -> list[BrokenPlugin]:
        """The plugins whose module failed to import, matching ``pattern``, sorted by name."""
        self._ensure_loaded()
        return [self._broken[n] for n in sorted(self._broken) if fnmatch.fnmatchcase(n, pattern)]

    def mark_broken(self, plugin: BrokenPlugin) -> None:
        """Record ``plugin`` as a placeholder (never over a working plugin of that name)."""
        if plugin.name not in self._items:
            self._broken.setdefault(plugin.name, plugin)

    def load(self) -> None:
        """Import the built-ins and entry-point plugins now (otherwise done at the first lookup)."""
        self._ensure_loaded()

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._items)

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        self._loading_dist = "noisybench"  # built-ins
        try:
            for package in self._packages:
                for module in discover_modules(package):
                    import_isolated(module, [self], module.rpartition(".")[2], extra=[self])
        finally:
            self._loading_dist = ""
        if self._entry_point_group:
            self._load_entry_points(self._entry_point_group)
        from noisybench.plugins import load_environment_plugins

        load_environment_plugins()

    def _load_entry_points(self, group: str) -> None:
        for ep in importlib.metadata.entry_points(group=group):
            dist = ep.dist.name if ep.dist is not None else ""
            self._loading_dist = dist
            try:
                obj = isolated(lambda ep=ep: ep.load(), [self], ep.name, f"entry point {ep.name} = {ep.value}"
                               f"{f' ({dist})' if dist else ''}", "", extra=[self])
            finally:
                self._loading_dist = ""
            if obj is not None and obj not in self._items.values():
                self.add(ep.name, obj, origin=Origin(getattr(obj, "__module__", ep.module), dist, ep.name))


#: Modules that failed to import (a forkserver must not preload them).
FAILED_MODULES: set[str] = set()


def import_isolated(module: str, blame: Iterable[Registry], stem: str,
                    extra: Iterable[Registry] = ()) -> BrokenPlugin | None:
    """Import plugin ``module``; if that fails, undo what it registered and leave placeholders instead.

    The placeholders, named ``stem`` (in the registries ``blame``) and after every name the module had
    registered before failing, record its file, line and error (:class:`BrokenPlugin`). A name clash
    (:class:`PluginError`) is not isolated: it is an error naming both plugins.
    """
    spec_file = _module_file(module)
    result = isolated(lambda: importlib.import_module(module), blame, stem, module, spec_file, extra)
    if result is None:
        FAILED_MODULES.add(module)
        return next((r._broken[stem] for r in blame if stem in r._broken), None)
    return None


def isolated(load: Callable[[], T], blame: Iterable[Registry], stem: str, source: str, file: str,
             extra: Iterable[Registry] = ()) -> T | None:
    """Call ``load`` (an import); on an exception, roll back its registrations and record placeholders.

    Returns what ``load`` returned, or None when it failed.
    """
    registries = list(dict.fromkeys([*REGISTRIES.values(), *extra]))
    before = {id(r): set(r._items) for r in registries}
    try:
        return load()
    except PluginError:
        raise
    except Exception as exc:  # one broken plugin must not break the suite
        where, line = _error_location(exc, file)
        error = f"SyntaxError: {exc.msg}" if isinstance(exc, SyntaxError) else f"{type(exc).__name__}: {exc}"
        error = error.strip().splitlines()[0] if error.strip() else type(exc).__name__
        for registry in registries:
            for name in set(registry._items) - before[id(registry)]:
                registry._items.pop(name)
                registry._origins.pop(name, None)
                registry.mark_broken(BrokenPlugin(name, registry.kind, source, where, line, error))
        for registry in blame:
            registry.mark_broken(BrokenPlugin(stem, registry.kind, source, where, line, error))
        return None


def _module_file(module: str) -> str:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return ""
    return spec.origin if spec is not None and spec.origin and Path(spec.origin).is_file() else ""


def _error_location(exc: BaseException, file: str) -> tuple[str, int | None]:
    """The file and line that failed: a syntax error's own, else the innermost frame in the plugin's folder (else
    the innermost frame outside the import machinery)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return exc.filename, exc.lineno
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<") and f.filename != __file__ and "importlib" not in f.filename]
    folder = str(Path(file).parent) if file else ""
    own = [f for f in frames if folder and f.filename.startswith(folder)]
    frame = (own or frames or [None])[-1]
    if frame is None:
        return file, None
    return frame.filename, frame.lineno


def importable_modules(package: str) -> list[str]:
    """:func:`discover_modules` of ``package`` less those that failed to import."""
    return [m for m in discover_modules(package) if m not in FAILED_MODULES]


def _origin_of(module: str, distribution: str) -> Origin:
    """The origin of a plugin defined in ``module`` (a local plugin's: its file, no distribution)."""
    from noisybench.plugins import LOCAL_PACKAGE

    if module.startswith(LOCAL_PACKAGE + "."):
        return Origin(module, "", "", getattr(sys.modules.get(module), "__file__", "") or "")
    return Origin(module, distribution or distribution_of(module))


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


@functools.cache
def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def distribution_of(module: str) -> str:
    """The installed distribution that provides ``module`` ("" when none does, e.g. a script).

    A module of a package whose installed distribution bears its name (``noisybench`` itself) is found by
    that name alone; only other modules need the slower scan of every installed distribution.
    """
    top = module.split(".")[0]
    if _installed(top):
        return top
    return (_distributions().get(top) or [""])[0]


def discover_modules(package: str) -> list[str]:
    """Every module of ``package`` (the package itself, then its public submodules, sorted)."""
    pkg = importlib.import_module(package)
    paths = getattr(pkg, "__path__", None)
    if paths is None:
        return [package]
    names = sorted(m.name for m in pkgutil.iter_modules(paths) if not m.name.startswith("_"))
    return [package, *(f"{package}.{name}" for name in names)]


def _dist(origin: Origin) -> str:
    if origin.file:
        return f" (file {origin.file})"
    return f" (distribution {origin.distribution})" if origin.distribution else ""


def _describe(obj: object) -> str:
    module = getattr(obj, "__module__", "?")
    return f"{module}.{getattr(obj, '__qualname__', repr(obj))}"


METHODS: Registry = Registry("method", ("noisybench.methods",), "noisybench.methods")
DATASETS: Registry = Registry("dataset", ("noisybench.datasets",), "noisybench.datasets")
NOISES: Registry = Registry("noise", ("noisybench.noises",), "noisybench.noises")
MODELS: Registry = Registry("model", ("noisybench.archs",), "noisybench.models")
#: Every registry, by the word ``noisybench list`` takes.
REGISTRIES: dict[str, Registry] = {"methods": METHODS, "datasets": DATASETS, "noises": NOISES, "models": MODELS}

register_method = METHODS.register
register_dataset = DATASETS.register
register_noise = NOISES.register
register_model = MODELS.register


def list_methods(pattern: str = "*") -> list[str]:
    """Names of registered methods matching ``pattern``."""
    return METHODS.list(pattern)


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of registered datasets matching ``pattern``."""
    return DATASETS.list(pattern)


def list_noises(pattern: str = "*") -> list[str]:
    """Names of registered noise models matching ``pattern``."""
    return NOISES.list(pattern)


def list_models(pattern: str = "*") -> list[str]:
    """Names of registered architectures matching ``pattern``."""
    return MODELS.list(pattern)
