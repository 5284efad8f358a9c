"""Safe readers for the pickled files of the real datasets, and checksum checks.

Nothing here unpickles with code execution:

* CIFAR batches (Python-2 pickles of dicts holding a numpy array and lists) go through
  :class:`CifarUnpickler`, which resolves only the numpy reconstruction globals those files
  contain and refuses every other global.
* CIFAR-N ``.pt`` label files go through ``torch.load(weights_only=True)`` with an allow-list of
  exactly the numpy globals their pickle needs (``torch.serialization.safe_globals``).

Checksums of the official releases are verified; a mismatch (a re-encoded copy, a test
fixture) only warns.
"""

from __future__ import annotations

import codecs
import hashlib
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from noisybench.errors import DataError

try:  # numpy >= 2 keeps the implementation in numpy._core; pickles name numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

#: (module, name) -> object, the only globals a CIFAR batch or CIFAR-N label pickle may name.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, strings, numbers and numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        """Resolve allow-listed numpy globals; refuse anything else."""
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: CIFAR files contain only numpy arrays and lists"
            ) from None


def load_cifar_pickle(path: Path) -> dict[str, Any]:
    """Read one CIFAR python batch (``data_batch_1``, ``test_batch``, ``train``, ``meta`` ...) safely.

    Parameters
    ----------
    path
        The batch file.

    Returns
    -------
    dict
        The batch with ``str`` keys (latin-1 decoding, as torchvision reads them).
    """
    try:
        with open(path, "rb") as f:
            obj = CifarUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: not a readable CIFAR python batch ({exc}); re-extract the archive") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict in a CIFAR batch, found {type(obj).__name__}")
    return obj


def load_label_pt(path: Path) -> dict[str, Any]:
    """Read a CIFAR-N ``*_human.pt`` file with ``torch.load(weights_only=True)`` and a numpy allow-list.

    Parameters
    ----------
    path
        ``CIFAR-10_human.pt`` or ``CIFAR-100_human.pt``.

    Returns
    -------
    dict
        Label arrays (``int64``) by key; Python lists are converted to arrays.
    """
    import torch

    allow = [
        (_reconstruct, "numpy.core.multiarray._reconstruct"), (_reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray, np.dtype, codecs.encode, *_dtype_classes(),
    ]
    try:
        with torch.serialization.safe_globals(allow):
            obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # UnpicklingError, RuntimeError (not a zip), ...
        raise DataError(f"{path}: not a readable CIFAR-N label file ({_reason(exc)})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict of label arrays, found {type(obj).__name__}")
    return {str(k): np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.int64) for k, v in obj.items()}


def _reason(exc: Exception) -> str:
    """Why ``torch.load`` refused a file, naming the refused global when there is one.

    torch's own message suggests turning ``weights_only`` off; that advice is never passed on:
    a label file holds only numpy arrays, so a file that names any other global is not one.
    """
    text = str(exc)
    refused = re.search(r"GLOBAL\s+([\w.]+)", text)
    if refused:
        return (f"it names the global {refused.group(1)}, which is not allowed: a CIFAR-N label file holds only "
                "numpy arrays; use the file from UCSC-REAL/cifar-10-100n")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "weights_only" not in ln]
    return lines[0] if lines else type(exc).__name__


def _dtype_classes() -> list[type]:
    """numpy's integer dtype classes (``numpy.dtypes.Int64DType`` ...), which pickles name since numpy 1.25."""
    dtypes = getattr(np, "dtypes", None)
    names = ("Int64DType", "Int32DType", "Int16DType", "Int8DType", "UInt8DType", "LongDType", "IntDType")
    return [getattr(dtypes, n) for n in names if dtypes is not None and hasattr(dtypes, n)]


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(path: Path, expected: str, algorithm: str = "md5", *, warn: bool = True) -> bool:
    """Compare ``path``'s digest with the official release's; warn (never raise) on a mismatch.

    Returns
    -------
    bool
        Whether the file matches.
    """
    actual = file_digest(path, algorithm)
    if actual != expected and warn:
        warnings.warn(
            f"{path}: {algorithm} {actual} differs from the official release ({expected}); "
            "loading it anyway (a re-encoded copy or a fixture). Results may not be comparable.",
            stacklevel=2,
        )
    return actual == expected
