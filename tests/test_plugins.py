"""Plugins that fail to import break nothing else, and local plugin folders load like the built-ins
(noisybench.registry, noisybench.plugins)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from noisybench import registry
from noisybench.cli import main
from noisybench.config import load_grid
from noisybench.plan import expand_grid
from noisybench.registry import METHODS, BrokenPluginError
from noisybench.store.results import load_results

ROOT = Path(__file__).resolve().parents[1]

GOOD = '''
from noisybench.methods.ce import CE
from noisybench.registry import register_method

from ._helpers import SCALE


@register_method("my-ce")
class MyCE(CE):
    """Cross-entropy from a local folder."""

    display_name = "My CE"
    hparams = {"scale": SCALE}
'''

BROKEN = '''
from noisybench.methods.ce import CE
from noisybench.registry import register_method

@register_method("bad-ce")
class BadCE(CE):
    """Registers, then the module fails."""

value = undefined_name + 1
'''


def grid_text(methods: str, plugins: str = "") -> str:
    return textwrap.dedent(f"""
        name = "plug"
        {plugins}
        [grid]
        datasets = ["blobs"]
        methods = {methods}
        noise = ["sym:0.2"]
        seeds = [1, 2]
        [train]
        epochs = 2
        [datasets.blobs]
        n_samples = 300
        dim = 6
    """)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("noisybench: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def local_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my_methods"
    write(folder, "good.py", GOOD)
    write(folder, "_helpers.py", "SCALE = 1.0\n")
    write(folder, "bad.py", BROKEN)
    return folder


def test_a_broken_local_plugin_is_listed_refused_and_breaks_no_other_grid(
        local_folder: Path, tmp_path: Path, fresh_plugins, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("NOISYBENCH_PLUGINS", str(local_folder))
    assert main(["list", "methods"]) == 0
    listing = capsys.readouterr().out
    bad = f"{local_folder / 'bad.py'}, line 9: NameError: name 'undefined_name' is not defined"
    assert "my-ce" in listing and f"{local_folder / 'good.py'} (local)" in listing
    for name in ("bad", "bad-ce"):  # the file's name, and what it had registered before failing
        assert any(line.split()[:2] == [name, "BROKEN"] and line.endswith(bad) for line in listing.splitlines())
    grid = write(tmp_path, "bad.toml", grid_text('["ce", "bad-ce"]'))
    out = tmp_path / "out-bad"
    assert main(["plan", str(grid)]) == 2
    assert bad in one_line(capsys.readouterr().err)
    assert main(["run", str(grid), "--out", str(out), "--workers", "1"]) == 2
    assert bad in one_line(capsys.readouterr().err) and not out.exists()  # refused before anything is written
    other = write(tmp_path, "other.toml", grid_text('["ce", "my-ce"]'))
    assert main(["run", str(other), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    assert "warning: method plugin 'bad' failed to load" in capsys.readouterr().err
    assert set(load_results(tmp_path / "out")["status"]) == {"done"}


def test_report_of_runs_of_a_plugin_that_broke_since(local_folder: Path, tmp_path: Path, fresh_plugins,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("NOISYBENCH_PLUGINS", str(local_folder))
    grid = write(tmp_path, "g.toml", grid_text('["ce", "my-ce"]'))
    assert main(["run", str(grid), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    write(local_folder, "good.py", GOOD + "\nraise ImportError('needs a package that is not installed')\n")
    fresh_plugins()  # a new process: the folder is read again
    capsys.readouterr()
    assert main(["report", str(tmp_path / "out")]) == 0
    table = capsys.readouterr().out
    assert "my-ce" in table and "CE" in table
    with pytest.raises(BrokenPluginError, match=r"good\.py, line \d+: ImportError: needs a package"):
        METHODS.get("my-ce")


def _copy_of_the_builtins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the built-in methods folder as the method registry's package (a broken file added to it)."""
    package = tmp_path / "nb_builtin_copy"
    shutil.copytree(ROOT / "methods", package, ignore=shutil.ignore_patterns("__pycache__"))
    write(package, "broken.py", "from noisybench.registry import register_method\n\ndef f(:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(METHODS, "_packages", ("nb_builtin_copy",))
    monkeypatch.setattr(METHODS, "_loaded", False)
    monkeypatch.setattr(METHODS, "_items", {})
    monkeypatch.setattr(METHODS, "_origins", {})
    monkeypatch.setattr(METHODS, "_broken", {})
    return package


def test_a_broken_builtin_file_is_a_placeholder_too(tmp_path: Path, fresh_plugins, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    package = _copy_of_the_builtins(tmp_path, monkeypatch)
    assert main(["list", "methods"]) == 0
    listing = capsys.readouterr().out
    assert "nb_builtin_copy.ce" in listing and "nb_builtin_copy.dividemix" in listing
    broken = f"{package / 'broken.py'}, line 3: SyntaxError: "
    assert any(line.startswith("broken ") and broken in line for line in listing.splitlines()), listing
    assert registry.importable_modules("nb_builtin_copy") == [
        m for m in registry.discover_modules("nb_builtin_copy") if m != "nb_builtin_copy.broken"]  # not preloaded
    grid = write(tmp_path, "bad.toml", grid_text('["broken"]'))
    assert main(["plan", str(grid)]) == 2
    assert broken in one_line(capsys.readouterr().err)
    other = write(tmp_path, "ok.toml", grid_text('["ce", "gce"]'))
    assert main(["run", str(other), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    assert set(load_results(tmp_path / "out")["status"]) == {"done"}


def test_a_broken_entry_point_is_a_placeholder_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    ep = importlib.metadata.EntryPoint("remote-loss", "nb_no_such_module:X", "noisybench.methods")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [ep])
    reg: registry.Registry = registry.Registry("method", entry_point_group="noisybench.methods")
    assert reg.list() == [] and [b.name for b in reg.broken()] == ["remote-loss"]
    with pytest.raises(BrokenPluginError, match=r"'remote-loss' cannot be used.*entry point remote-loss = "
                                                r"nb_no_such_module:X.*No module named 'nb_no_such_module'"):
        reg.get("remote-loss")


def test_grid_plugin_paths_load_a_folder_relative_to_the_grid_in_every_worker(
        local_folder: Path, tmp_path: Path, fresh_plugins, capsys: pytest.CaptureFixture) -> None:
    (local_folder / "bad.py").unlink()
    grid = write(tmp_path, "g.toml", grid_text('["ce", "my-ce"]', '[plugins]\npaths = ["my_methods/"]'))
    runs = expand_grid(load_grid(grid))
    assert {r.plugins for r in runs} == {(str(local_folder),)}
    assert METHODS.origin("my-ce").file == str(local_folder / "good.py")
    assert main(["run", str(grid), "--out", str(tmp_path / "out"), "--workers", "2"]) == 0  # fresh processes
    frame = load_results(tmp_path / "out")
    assert set(frame["status"]) == {"done"} and set(frame["method"]) == {"ce", "my-ce"}
    capsys.readouterr()
    assert main(["run", str(grid), "--out", str(tmp_path / "out")]) == 0  # the workers' fingerprints are current
    assert "4 already finished, 0 to run" in capsys.readouterr().err


def test_plugin_folders_do_not_change_run_ids_and_travel_with_the_run(local_folder: Path, tmp_path: Path,
                                                                       fresh_plugins) -> None:
    from noisybench.config import RunConfig

    (local_folder / "bad.py").unlink()
    grid = write(tmp_path, "g.toml", grid_text('["my-ce"]', '[plugins]\npaths = ["my_methods"]'))
    runs = expand_grid(load_grid(grid))
    moved = tmp_path / "elsewhere" / "my_methods"
    shutil.copytree(local_folder, moved)
    fresh_plugins()
    again = expand_grid(load_grid(write(moved.parent, "g.toml", grid.read_text())))
    assert [r.run_id for r in again] == [r.run_id for r in runs]
    assert again[0].plugins == (str(moved),) != runs[0].plugins
    restored = RunConfig.from_dict(again[0].to_dict())
    assert restored.plugins == again[0].plugins and restored.run_id == again[0].run_id


def test_a_local_plugins_fingerprint_hashes_its_source_and_its_helpers(local_folder: Path, tmp_path: Path,
                                                                        fresh_plugins) -> None:
    from noisybench.orchestration.fingerprint import plugin

    (local_folder / "bad.py").unlink()
    grid = write(tmp_path, "g.toml", grid_text('["my-ce"]', '[plugins]\npaths = ["my_methods"]'))
    expand_grid(load_grid(grid))
    first = plugin(METHODS, "my-ce")
    assert first["module"] == "noisybench_local.my_methods.good" and first["distribution"] == ""
    write(local_folder, "_helpers.py", "SCALE = 2.0\n")  # a helper it imports relatively
    assert plugin(METHODS, "my-ce")["source"] != first["source"]


def test_a_local_plugin_taking_a_builtin_name_is_an_error_naming_both(tmp_path: Path, fresh_plugins,
                                                                       capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "mine"
    write(folder, "dup.py", "from noisybench.methods.ce import CE\nfrom noisybench.registry import register_method\n"
                            "\n@register_method('ce')\nclass Dup(CE):\n    pass\n")
    grid = write(tmp_path, "g.toml", grid_text('["ce"]', '[plugins]\npaths = ["mine"]'))
    assert main(["plan", str(grid)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "'ce' is registered twice" in line and "noisybench.methods.ce.CE" in line
    assert f"file {folder / 'dup.py'}" in line


@pytest.mark.parametrize(("value", "message"), [('["nowhere/"]', "'nowhere/' is not an existing folder"),
                                                ('"my_methods"', "must be a list of folder paths")])
def test_bad_plugin_paths_are_refused_naming_the_key(value: str, message: str, local_folder: Path,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    grid = write(tmp_path, "g.toml", grid_text('["ce"]', f"[plugins]\npaths = {value}"))
    assert main(["plan", str(grid)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{grid}: [plugins] paths" in line and message in line
