"""Environment variables: declared in one module, validated with a one-line error before `run` writes anything,
and honoured by every command they concern (noisybench.envvars)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from noisybench.cli import main
from noisybench.envvars import VARIABLES

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ("noisybench", "methods", "datasets") for p in sorted((ROOT / folder).rglob("*.py"))]


def _one_line_error(capsys: pytest.CaptureFixture, variable: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("noisybench: error: ") and "\n" not in err and "Traceback" not in err, err
    assert variable in err
    return err


def test_every_variable_the_code_reads_is_declared_and_read_through_the_module() -> None:
    named: dict[str, list[str]] = {}
    direct = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name in re.findall(r"NOISYBENCH_[A-Z0-9_]+", line):
                named.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{number}")
            if re.search(r"environ|getenv", line) and "NOISYBENCH" in line and path.name != "envvars.py":
                direct.append(f"{path.relative_to(ROOT)}:{number}")
    assert set(named) <= set(VARIABLES), {n: w for n, w in named.items() if n not in VARIABLES}
    assert direct == [], "read NOISYBENCH_* variables through noisybench.envvars.get"
    assert "NOISYBENCH_TEST_EPOCH_SLEEP" not in named  # no test hook in production code


@pytest.mark.parametrize("value", ["abc", "inf", "-1", "nan", "1e300"])
def test_a_bad_stop_grace_is_refused_before_anything_is_written(
        value: str, grid_file, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("NOISYBENCH_STOP_GRACE", value)
    out = tmp_path / "out"
    assert main(["run", str(grid_file()), "--out", str(out), "--workers", "1"]) == 2
    assert "set it to e.g." in _one_line_error(capsys, "NOISYBENCH_STOP_GRACE")
    assert not out.exists()


@pytest.mark.parametrize(("name", "value"), [("NOISYBENCH_CLAIM_TTL", "abc"), ("NOISYBENCH_CLAIM_TTL", "0"),
                                             ("NOISYBENCH_CHECKPOINT_SECONDS", "-1"),
                                             ("NOISYBENCH_PLUGINS", "/no/such/folder")])
def test_other_bad_values_are_refused_by_run_before_anything_is_written(
        name: str, value: str, grid_file, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    assert main(["run", str(grid_file()), "--out", str(out), "--workers", "1"]) == 2
    _one_line_error(capsys, name)
    assert not out.exists()


def test_a_bad_claim_ttl_no_longer_breaks_the_import_of_the_store() -> None:
    env = {**os.environ, "NOISYBENCH_CLAIM_TTL": "abc"}
    done = subprocess.run([sys.executable, "-c", "import noisybench.store.claims, noisybench.store.status"],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_the_claim_ttl_is_read_when_claiming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from noisybench.store.claims import Claim, try_claim

    first = try_claim(tmp_path, "r", interval=3600)
    second = None
    try:
        os.utime(first.path, (os.path.getmtime(first.path) - 60,) * 2)  # no heartbeat for a minute
        monkeypatch.setenv("NOISYBENCH_CLAIM_TTL", "10")
        second = try_claim(tmp_path, "r")
        assert isinstance(second, Claim) and second.generation == 1  # older than the TTL read now: taken over
    finally:
        for claim in (second, first):
            if isinstance(claim, Claim):
                claim.release()


CIFAR_GRID = """
[grid]
datasets = ["cifar10"]
methods = ["ce"]
noise = ["sym:0.2"]
seeds = [1]
"""


@pytest.mark.parametrize("where", ["env", "grid", "flag"])
def test_the_data_root_comes_from_the_flag_then_the_grid_then_the_environment(
        where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    roots = {k: tmp_path / k for k in ("env", "grid", "flag")}
    for root in roots.values():
        root.mkdir()
    monkeypatch.setenv("NOISYBENCH_DATA", str(roots["env"]))
    body = CIFAR_GRID + (f'[data]\nroot = "{roots["grid"]}"\n' if where in ("grid", "flag") else "")
    grid = tmp_path / "g.toml"
    grid.write_text(body)
    args = ["run", str(grid), "--out", str(tmp_path / "out")]
    if where == "flag":
        args += ["--data-dir", str(roots["flag"])]
    assert main(args) == 2  # no CIFAR files anywhere: refused before anything runs, naming the root it used
    err = capsys.readouterr().err
    assert str(roots[where] / "cifar-10-batches-py") in err
    assert not (tmp_path / "out").exists()


def test_documented_environment_table_is_generated_from_the_module() -> None:
    from noisybench.envvars import markdown_table

    text = (ROOT / "docs" / "environment.md").read_text()
    start = text.index("<!-- generated: environment ")
    section = text[text.index("\n", start) + 1:text.index("<!-- end generated: environment -->")]
    assert section == markdown_table(), "docs/environment.md drifted: regenerate it with python docs/gen.py"
    assert all(f"`{name}`" in section for name in VARIABLES)
