"""Name registries for methods, datasets, noise models and architectures.

Modelled on mmengine (duplicates are refused) and timm (``list_*("pattern*")`` wildcards,
``create_*(name, **kw)``). Built-in plugins are discovered lazily the first time a registry is
queried: every module of ``noisybench.methods``, ``noisybench.datasets``, ``noisybench.archs``
and ``noisybench.noise`` is imported. Third-party packages add plugins through the entry-point
groups ``noisybench.methods``, ``noisybench.datasets``, ``noisybench.noises`` and
``noisybench.models``. Each plugin's origin (module, distribution) is recorded; a name claimed
by two plugins, from any two origins, is an error naming both.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import importlib.metadata
import pkgutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from noisybench.errors import NoisybenchError, UnknownNameError, suggest

T = TypeVar("T")


@dataclass(frozen=True)
class Origin:
    """Where a plugin comes from: its module, and the distribution that installed it."""

    module: str
    distribution: str = ""
    entry_point: str = ""

    def describe(self) -> str:
        """``module (distribution)``, for listings and messages."""
        dist = f" ({self.distribution})" if self.distribution else ""
        return f"{self.module}{dist}"


class PluginError(NoisybenchError):
    """Two plugins claim one name, or a plugin breaks the registry's rules."""


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
        origin = origin or Origin(module, self._loading_dist or distribution_of(module))
        if name in self._items and not force and self._items[name] is not obj:
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by {_describe(self._items[name])}"
                f"{_dist(self._origins[name])} and by {_describe(obj)}{_dist(origin)}; "
                "rename one of them (or pass force=True to replace on purpose)"
            )
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
        except KeyError:
            hint = suggest(name, self._items)
            known = ", ".join(sorted(self._items))
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {known}. "
                f"`noisybench list {self.kind}s` lists them."
            ) from None

    def origin(self, name: str) -> Origin:
        """Where the plugin ``name`` comes from."""
        self.get(name)
        return self._origins[name]

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the shell-style ``pattern`` (``"*mix*"``)."""
        self._ensure_loaded()
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

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
                    importlib.import_module(module)
        finally:
            self._loading_dist = ""
        if self._entry_point_group:
            self._load_entry_points(self._entry_point_group)

    def _load_entry_points(self, group: str) -> None:
        for ep in importlib.metadata.entry_points(group=group):
            dist = ep.dist.name if ep.dist is not None else ""
            self._loading_dist = dist
            try:
                obj = ep.load()
            except PluginError:
                raise
            except Exception as exc:  # a broken plugin must not break the suite
                warnings.warn(f"could not load {self.kind} plugin {ep.name!r} ({ep.value}): {exc}", stacklevel=3)
                continue
            finally:
                self._loading_dist = ""
            if obj not in self._items.values():
                self.add(ep.name, obj, origin=Origin(getattr(obj, "__module__", ep.module), dist, ep.name))


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
    return f" (distribution {origin.distribution})" if origin.distribution else ""


def _describe(obj: object) -> str:
    module = getattr(obj, "__module__", "?")
    return f"{module}.{getattr(obj, '__qualname__', repr(obj))}"


METHODS: Registry = Registry("method", ("noisybench.methods",), "noisybench.methods")
DATASETS: Registry = Registry("dataset", ("noisybench.datasets",), "noisybench.datasets")
NOISES: Registry = Registry("noise", ("noisybench.noise", "noisybench.noise_blockswap"), "noisybench.noises")
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
