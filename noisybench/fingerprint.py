"""What a run's numbers depend on beyond its configuration: the code and the input files.

The run id pins the configuration. The fingerprint pins the rest: the suite's numeric core
(trainer, contract, data preparation, noise, metrics), each plugin the run uses (method, dataset,
noise model, architecture: its module, distribution, version and a hash of its source, including
the modules of its own package that it imports) and the sha256 of every input file it
reads (label files, dataset files), and where it computes (device type, precision, determinism).
A finished run whose stored fingerprint differs from the current one is **stale**:
``noisybench run`` names it and reruns it only when asked.

The suite's git commit and version are recorded too (in each run's environment), but they do not
make a run stale: a commit that changes no numeric code must not invalidate results.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from noisybench.config import RunConfig
from noisybench.noise import parse_noise
from noisybench.registry import DATASETS, METHODS, MODELS, NOISES, Registry

#: Modules whose code decides every run's numbers (plugins are fingerprinted one by one).
CORE_MODULES = (
    "noisybench.trainer", "noisybench.context", "noisybench.schedules", "noisybench.optim", "noisybench.method",
    "noisybench.data", "noisybench.data.prepare", "noisybench.data.streaming", "noisybench.noise", "noisybench.seeds",
    "noisybench.metrics", "noisybench.runtime",
)


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

    def part(registry: Registry, name: str) -> dict[str, str]:
        if (registry.kind, name) not in memo:
            memo[(registry.kind, name)] = plugin(registry, name)
        return memo[(registry.kind, name)]

    return {
        "core": memo.setdefault("core", core_hash()),
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


def _dataset_files(dataset: Any) -> list[Path]:
    try:
        return list(dataset.input_files())
    except Exception:  # no data root yet (planning a grid whose data lives elsewhere): nothing to hash
        return []


def core_hash() -> str:
    """sha256 over the source of :data:`CORE_MODULES`."""
    h = hashlib.sha256()
    for name in CORE_MODULES:
        h.update(_module_source(name))
    return h.hexdigest()[:16]


def plugin(registry: Registry, name: str) -> dict[str, str]:
    """Module, distribution, version and source hash of the plugin ``name``."""
    origin = registry.origin(name)
    version = ""  # the suite's own plugins are pinned by their source; a release number alone changes nothing
    if origin.distribution and origin.distribution != "noisybench":
        try:
            version = importlib.metadata.version(origin.distribution)
        except importlib.metadata.PackageNotFoundError:
            version = ""
    return {"module": origin.module, "distribution": origin.distribution, "version": version,
            "source": _source_hash(origin.module)}


def _source_hash(module: str) -> str:
    """sha256 of ``module``'s source and of the modules of its own package that it imports (transitively)."""
    h = hashlib.sha256()
    for name in sorted(_package_imports(module)):
        h.update(name.encode() + b"\0" + _module_source(name))
    return h.hexdigest()[:16]


def _package_imports(module: str, seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    seen.add(module)
    package = re.escape(module.rpartition(".")[0])
    text = _module_source(module).decode(errors="replace")
    for helper in re.findall(rf"^\s*from\s+({package}\.\w+)\s+import", text, flags=re.M):
        if helper not in seen:
            _package_imports(helper, seen)
    return seen


def _module_source(name: str) -> bytes:
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    if origin is None or not Path(origin).is_file():
        return b""
    return Path(origin).read_bytes()


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
