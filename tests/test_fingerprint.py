"""Fingerprints: what a run's numbers depend on beyond its id (noisybench.fingerprint)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from noisybench.config import Grid
from noisybench.fingerprint import _package_imports, differences, digest, fingerprint, fingerprints
from noisybench.plan import expand_grid


def _runs(noise: str = "sym:0.2") -> list:
    grid = Grid(name="f", datasets=["blobs"], methods=["ce", "dividemix"], noise=[noise], seeds=[1, 2],
                train={"epochs": 2}, dataset_params={"blobs": {"n_samples": 200}})
    return expand_grid(grid)


def test_plugins_are_pinned_with_the_modules_of_their_package_they_import() -> None:
    assert {"noisybench.methods.dividemix", "noisybench.methods._common"} <= _package_imports(
        "noisybench.methods.dividemix")
    assert {"noisybench.datasets.cifar10", "noisybench.datasets._cifarn", "noisybench.datasets._cifar"} <= \
        _package_imports("noisybench.datasets.cifar10n")
    fp = fingerprint(_runs()[0])
    assert fp["method"]["module"] == "noisybench.methods.ce" and fp["arch"]["module"] == "noisybench.archs.mlp"
    assert fp["runtime"]["device"] in {"cpu", "cuda"} and fp["inputs"] == {}


def test_seeds_share_a_fingerprint_and_methods_do_not() -> None:
    runs = _runs()
    digests = fingerprints(runs)
    by_method: dict[str, set[str]] = {}
    for run in runs:
        by_method.setdefault(run.method, set()).add(digests[run.run_id])
    assert len(by_method["ce"]) == 1 and len(by_method["dividemix"]) == 1 and by_method["ce"] != by_method["dividemix"]


def test_a_label_file_is_pinned_by_content(tmp_path: Path) -> None:
    labels = tmp_path / "labels.npy"
    np.save(labels, np.arange(160) % 3)
    run = _runs(noise=f"human:{labels}")[0]
    before = fingerprint(run)
    assert list(before["inputs"]) == [str(labels)]
    np.save(labels, (np.arange(160) + 1) % 3)
    after = fingerprint(run)
    assert digest(before) != digest(after) and differences(before, after) == ["inputs"]
    assert differences(None, after) == ["unrecorded"]
    assert fingerprint(replace(run, seed=9))["inputs"] == after["inputs"]
