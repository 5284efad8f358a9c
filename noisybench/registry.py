"""Name registries for methods, datasets, noise models and architectures.

Modelled on mmengine (duplicates are refused) and timm (``list_*("pattern*")`` wildcards,
``create_*(name, **kw)``). Built-in plugins are imported lazily the first time a registry is
queried; third-party packages add methods through the entry-point group
``noisybench.methods``.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import warnings
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from noisybench.errors import UnknownNameError, suggest

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to plugins that refuses duplicate names.

    Parameters
    ----------
    kind
        What the registry holds, used in messages ("method", "dataset", ...).
    locations
        Modules imported before the first lookup; importing them registers the built-ins.
    entry_point_group
        Entry-point group whose targets are imported (and so register themselves, or are
        registered under the entry point's name when they are not yet registered).
    """

    def __init__(
        self, kind: str, locations: tuple[str, ...] = (), entry_point_group: str | None = None
    ) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._locations = locations
        self._entry_point_group = entry_point_group
        self._loaded = False

    def register(self, name: str | None = None, *, force: bool = False) -> Callable[[T], T]:
        """Return a decorator that registers its target under ``name``.

        Without ``name`` the target's ``name`` attribute, else its ``__name__``, is used.
        A name that is taken raises ``KeyError`` unless ``force`` is true.
        """

        def decorator(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__
            self.add(key, obj, force=force)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, force: bool = False) -> None:
        """Register ``obj`` under ``name``; refuse a taken name unless ``force``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._items and not force and self._items[name] is not obj:
            raise KeyError(
                f"{self.kind} {name!r} is already registered (by "
                f"{_describe(self._items[name])}); choose another name or pass force=True"
            )
        if hasattr(obj, "name") and isinstance(obj, type):
            # Plugins registered under an explicit name learn it, so runs record one name.
            obj.name = name  # type: ignore[attr-defined]
        self._items[name] = obj

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
        for module in self._locations:
            importlib.import_module(module)
        if self._entry_point_group:
            self._load_entry_points(self._entry_point_group)

    def _load_entry_points(self, group: str) -> None:
        for ep in importlib.metadata.entry_points(group=group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the suite
                warnings.warn(f"could not load {self.kind} plugin {ep.name!r}: {exc}", stacklevel=3)
                continue
            if obj not in self._items.values():
                self.add(ep.name, obj)


def _describe(obj: object) -> str:
    module = getattr(obj, "__module__", "?")
    return f"{module}.{getattr(obj, '__qualname__', repr(obj))}"


METHODS: Registry = Registry("method", ("noisybench.methods",), "noisybench.methods")
DATASETS: Registry = Registry("dataset", ("noisybench.datasets",), "noisybench.datasets")
NOISES: Registry = Registry("noise", ("noisybench.noise",))
MODELS: Registry = Registry("model", ("noisybench.archs", "noisybench.archs_cifar"))

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
