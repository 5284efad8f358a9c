"""Checks of a grid file that refuse bad input before anything runs or is written.

Each refusal is a :class:`~noisybench.errors.ConfigError` whose one-line message names the grid
file, the key and the fix. :func:`check_grid_table` checks the parsed TOML (names, seeds,
tables); :func:`naming` puts the file and key in front of errors raised deeper (registries,
plugins); :func:`check_label_files` reads ``human:FILE`` label files against their datasets.

Seeds are integers with ``0 <= seed < 2**63``: they fit TOML's and numpy's signed 64-bit
integers, ``torch.manual_seed`` takes them unchanged (it wraps a negative seed onto
``2**64 + seed``, so negative seeds are refused rather than silently aliased), and the results
table keeps them as int64.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from noisybench.errors import ConfigError, NoisybenchError
from noisybench.validate import check_distinct

#: Seeds are 0 <= seed < SEED_LIMIT (see the module docstring).
SEED_LIMIT = 2**63
#: Longest grid name in characters (it names a folder and a file, ``<name>.json``).
MAX_NAME = 100
#: Longest file name most file systems take (NAME_MAX, in bytes).
MAX_NAME_BYTES = 255


def check_grid_table(data: dict[str, Any], source: str, default_name: str) -> None:
    """Refuse bad names, seeds, repeated axis entries and non-table sections of a parsed grid."""
    check_name(data.get("name", default_name), source)
    if not isinstance(data.get("description", ""), str):
        raise ConfigError(f"{source}: description must be a string, got {data['description']!r}")
    axes = data["grid"]
    check_seeds(axes["seeds"], source)
    for key in ("datasets", "methods"):
        check_distinct(axes[key], axes[key], f"{source}: [grid]", key)
    for section in ("methods", "datasets"):
        for name, table in data.get(section, {}).items():
            if not isinstance(table, dict):
                raise ConfigError(f"{source}: [{section}.{name}] must be a table of key = value lines, "
                                  f"got {section}.{name} = {table!r}")
    root = data.get("data", {}).get("root")
    if root is not None and (not isinstance(root, str) or "\0" in root):
        raise ConfigError(f"{source}: [data] root must be a path string, got {root!r}")


def check_name(name: Any, source: str) -> None:
    """A grid name becomes ``results/<name>`` and ``<name>.json``: refuse names that are not one plain folder."""
    fix = "use letters, digits, '-', '_' and '.' (not first), e.g. name = \"quick\""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: name must be a non-empty string, got {name!r}; {fix}")
    if name.startswith(".") or any(c in name for c in "/\\") or not name.isprintable():
        raise ConfigError(f"{source}: name {name!r} cannot name a results folder; {fix}")
    size = len(name.encode("utf-8", errors="surrogatepass"))
    if len(name) > MAX_NAME or size + len(".json") > MAX_NAME_BYTES:
        raise ConfigError(f"{source}: name is too long for a file name ({len(name)} characters, {size} bytes in "
                          f"UTF-8; at most {MAX_NAME} characters and {MAX_NAME_BYTES - len('.json')} bytes): "
                          "choose a shorter name")


def check_arch_options(arch: str, builder: Any, options: dict[str, Any], where: str) -> None:
    """Refuse ``arch_kwargs`` that the architecture's builder does not take, or of the wrong type (read from its
    signature: names, and the type of each default). A builder taking ``**kwargs`` checks its own."""
    import inspect

    from noisybench.errors import suggest
    from noisybench.validate import check_like_defaults

    try:
        parameters = dict(inspect.signature(builder).parameters)
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    names = [n for n, p in parameters.items() if n not in ("in_shape", "num_classes")
             and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    for key, value in options.items():
        if key not in names:
            raise ConfigError(f"{where}: architecture {arch!r} has no option {key!r}.{suggest(key, names)} "
                              f"Its options: {', '.join(names) or 'none'}")
        default = parameters[key].default
        if default is not inspect.Parameter.empty:
            check_like_defaults(key, value, [list(default) if isinstance(default, tuple) else default], where)


def check_devices(runs: Sequence[Any], source: str) -> None:
    """Refuse ``[train] device = "cuda[:N]"`` when this machine has no such GPU (runs trained here would all fail).

    Not for Slurm grids, whose driver often runs on a node without a GPU.
    """
    import torch

    for device in sorted({run.train.device for run in runs}):
        if not device.startswith("cuda"):
            continue
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            have = f"{count} GPU(s)" if count else "no GPU that torch can use"
            raise ConfigError(f"{source}: [train] device = {device!r}, but this machine has {have}: use device = "
                              "\"auto\" (CUDA when present, else the CPU) or \"cpu\", or train on GPU nodes "
                              "(--executor slurm)")


def check_seeds(seeds: list[Any], source: str, key: str = "[grid] seeds") -> None:
    """Integers in ``[0, 2**63)``, each once (``key`` names the list in messages)."""
    for seed in seeds:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"{source}: {key} must be integers, got {seed!r}")
        if not 0 <= seed < SEED_LIMIT:
            raise ConfigError(f"{source}: {key} must be in 0 .. 2**63 - 1, got {seed}; "
                              "pick small non-negative seeds such as 1, 2, 3")
    table, _, name = key.rpartition(" ")
    check_distinct(seeds, seeds, f"{source}: {table}", name)


@contextlib.contextmanager
def naming(source: str, key: str) -> Iterator[None]:
    """Re-raise a user error from inside the block with the grid file and ``key`` in front."""
    try:
        yield
    except NoisybenchError as exc:
        message = str(exc)
        if message.startswith(source):
            raise
        where = source if key in message else f"{source}: {key}"
        raise type(exc)(f"{where}: {message}") from None


def check_label_files(runs: Sequence[Any], source: str) -> None:
    """Read every ``human:FILE`` label file of ``runs`` against its dataset's training set, once each.

    A missing file, one of the wrong length or with labels out of range is refused here, before
    anything runs, instead of failing every run that uses it. Loads each such dataset once.
    """
    from pathlib import Path

    from noisybench.data import load_dataset
    from noisybench.noise import parse_noise, read_label_file

    seen: set[tuple[str, str, str, str | None]] = set()
    for run in runs:
        spec = parse_noise(run.noise)
        if spec.family != "human" or Path(spec.arg or "").suffix not in {".npy", ".txt", ".csv"}:
            continue
        key = (spec.arg or "", run.dataset.name, repr(sorted(run.dataset.params.items())), run.data_root)
        if key in seen:
            continue
        seen.add(key)
        with naming(source, f"[grid] noise {run.noise!r}"):
            dataset, splits = load_dataset(run.dataset.name, run.data_root, **run.dataset.params)
            read_label_file(Path(spec.arg or "").expanduser(), len(splits.y_train), dataset.num_classes)
