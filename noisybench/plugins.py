"""Local plugins: every module of the user's own folders, loaded like the built-ins, without packaging.

A grid's ``[plugins] paths = ["my_methods/"]`` (relative to the grid file) and the folders of
``$NOISYBENCH_PLUGINS`` (separated by ``os.pathsep``) hold plugin modules: each public module
(not ``_private``) is imported and registers what it defines through the usual decorators
(``@register_method``, ``@register_dataset``, ``@register_noise``, ``@register_model``). A module
imports its folder's helpers relatively (``from ._helpers import f``).

Each folder becomes the package ``noisybench_local.<folder name>`` (a second folder of the same
name gets ``_2``, and so on), so its modules have stable, importable names: the fingerprint of a
local plugin hashes its source as a built-in's is. The same rules as for the built-ins apply: a
name registered twice is an error naming both files, and a module that fails to import becomes a
placeholder that ``noisybench list`` shows and that a grid using it is refused with.

Runs carry their plugin folders (:attr:`noisybench.config.RunConfig.plugins`, not part of the run
id), so pool workers and Slurm jobs load the same folders before they train.
"""

from __future__ import annotations

import importlib.util
import pkgutil
import re
import sys
import types
from collections.abc import Iterable
from pathlib import Path

from noisybench.errors import ConfigError

#: The package under which every local plugin folder is imported.
LOCAL_PACKAGE = "noisybench_local"
#: Resolved folder -> its package name, for the folders loaded in this process.
LOADED: dict[str, str] = {}
_LOADING: list[bool] = []  # re-entry guard: loading a folder first loads every registry, which reads the environment
_REGISTRATION = re.compile(r"\b(register_method|register_dataset|register_noise|register_model|"
                           r"METHODS|DATASETS|NOISES|MODELS)\b")


def load_plugin_folders(folders: Iterable[str | Path], where: str = "plugin folder") -> tuple[str, ...]:
    """Import every public module of each folder (once per process); return the folders, resolved.

    The built-ins and entry-point plugins of every kind are loaded first, so that a clash names both
    plugins. A folder that does not exist raises :class:`ConfigError` naming ``where``.
    """
    from noisybench.registry import REGISTRIES

    resolved = []
    for folder in folders:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{where} {str(folder)!r} is not an existing folder; give a folder of plugin modules "
                              "(paths are relative to the grid file)")
        resolved.append(str(path.resolve()))
    resolved = list(dict.fromkeys(resolved))
    if any(f not in LOADED for f in resolved):
        for registry in REGISTRIES.values():
            registry.load()
    for folder in resolved:
        if folder not in LOADED:
            _load_folder(Path(folder))
    return tuple(resolved)


def load_environment_plugins() -> tuple[str, ...]:
    """Load the folders of ``$NOISYBENCH_PLUGINS`` not loaded yet; return them all."""
    from noisybench.envvars import get

    folders = get("NOISYBENCH_PLUGINS")
    if _LOADING or all(f in LOADED for f in folders):
        return tuple(folders)
    _LOADING.append(True)
    try:
        return load_plugin_folders(folders, "$NOISYBENCH_PLUGINS:")
    finally:
        _LOADING.pop()


def _load_folder(folder: Path) -> None:
    from noisybench.registry import REGISTRIES, import_isolated

    package = _package(folder)
    LOADED[str(folder)] = package
    for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        file = folder / info.name / "__init__.py" if info.ispkg else folder / f"{info.name}.py"
        import_isolated(f"{package}.{info.name}", _kinds(file, REGISTRIES), info.name)


def _kinds(file: Path, registries: dict) -> list:
    """The registries a module registers into, read from its text (all of them when it names none): where a
    module that fails to import is listed."""
    try:
        text = file.read_text(errors="replace")
    except OSError:
        text = ""
    words = set(_REGISTRATION.findall(text))
    chosen = [registry for key, registry in registries.items()
              if f"register_{registry.kind}" in words or key.upper() in words]
    return chosen or list(registries.values())


def _package(folder: Path) -> str:
    """Create the package ``noisybench_local.<name>`` whose modules are the folder's files; return its name."""
    if LOCAL_PACKAGE not in sys.modules:
        root = importlib.util.module_from_spec(importlib.util.spec_from_loader(LOCAL_PACKAGE, None, is_package=True))
        root.__doc__ = "Local plugin folders (see noisybench.plugins)."
        sys.modules[LOCAL_PACKAGE] = root
    slug = re.sub(r"\W", "_", folder.name) or "plugins"
    slug = f"_{slug}" if slug[0].isdigit() else slug
    name, n = f"{LOCAL_PACKAGE}.{slug}", 2
    while name in sys.modules:
        name, n = f"{LOCAL_PACKAGE}.{slug}_{n}", n + 1
    init = folder / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
    else:
        spec = importlib.util.spec_from_loader(name, None, is_package=True)
    assert spec is not None
    spec.submodule_search_locations = [str(folder)]
    module: types.ModuleType = importlib.util.module_from_spec(spec)
    module.__path__ = [str(folder)]
    sys.modules[name] = module
    setattr(sys.modules[LOCAL_PACKAGE], name.rpartition(".")[2], module)
    if spec.loader is not None:
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigError(f"plugin folder {str(folder)!r}: its __init__.py fails: {type(exc).__name__}: {exc}; "
                              "fix it or remove it (a plugin folder needs none)") from None
    return name
