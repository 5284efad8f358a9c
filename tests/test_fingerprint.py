"""Fingerprints: what a run's numbers depend on beyond its id (noisybench.orchestration.fingerprint)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from noisybench.config import Grid
from noisybench.orchestration.fingerprint import differences, digest, fingerprint, fingerprints, plugin_modules
from noisybench.plan import expand_grid


def _runs(noise: str = "sym:0.2") -> list:
    grid = Grid(name="f", datasets=["blobs"], methods=["ce", "dividemix"], noise=[noise], seeds=[1, 2],
                train={"epochs": 2}, dataset_params={"blobs": {"n_samples": 200}})
    return expand_grid(grid)


def test_plugins_are_pinned_with_the_modules_of_their_package_they_import() -> None:
    assert {"noisybench.methods.dividemix", "noisybench.methods._common"} <= plugin_modules(
        "noisybench.methods.dividemix")
    assert {"noisybench.datasets.cifar10", "noisybench.datasets._cifarn", "noisybench.datasets._cifar"} <= \
        plugin_modules("noisybench.datasets.cifar10n")
    assert plugin_modules("noisybench.noises.sym") == {"noisybench.noises", "noisybench.noises._sampling",
                                                       "noisybench.noises.sym"}
    assert plugin_modules("noisybench.noises.human") == {"noisybench.noises.human"}  # the core is not repeated
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


# --- scheme 2: what cannot change a number does not count ----------------------------------------------------

from noisybench.orchestration import fingerprint as fpmod  # noqa: E402
from noisybench.orchestration.fingerprint import NON_NUMERIC, core_closure, core_hash, core_modules, installed_source  # noqa: E402

SEEDS = installed_source("noisybench.seeds")[0]


def _edited(changes: dict[str, str | None]):
    """A source reader of the installed code with some modules replaced (None: the module does not exist)."""
    def read(name: str):
        if name in changes:
            text = changes[name]
            return None if text is None else (text, name == "noisybench.engine")
        return installed_source(name)
    return read


def test_prose_and_layout_edits_in_a_core_module_change_nothing() -> None:
    assert "sha256" in SEEDS and '"""Named random streams' in SEEDS
    prose = SEEDS.replace('"""Named random streams', '"""Named, documented random streams', 1)
    prose = prose.replace("    digest = hashlib", "    # a comment\n\n    digest  =  hashlib", 1)
    prose = prose.replace('"""A seed sequence derived', '"""A seed sequence (reworded) derived', 1)
    assert prose != SEEDS
    assert core_hash(_edited({"noisybench.seeds": prose})) == core_hash()
    assert core_hash(_edited({"noisybench.seeds": SEEDS.replace("digest[:32]", "digest[:31]")})) != core_hash()


def test_moving_a_core_module_changes_nothing() -> None:
    """A core module moved into a new sub-package (imports rewritten, the package's __init__ only a docstring)."""
    old, new = "from noisybench.seeds import", "from noisybench.engine.seeds import"
    users = {name: installed_source(name)[0] for name in ("noisybench.context", "noisybench.data.prepare",
                                                          "noisybench.noise")}
    assert all(old + " stream" in text for text in users.values())
    moved = _edited({
        "noisybench.seeds": None, "noisybench.engine": '"""A new home."""\n', "noisybench.engine.seeds": SEEDS,
        **{name: text.replace(old, new) for name, text in users.items()},
    })
    assert "noisybench.engine.seeds" in core_modules(moved) and "noisybench.seeds" not in core_modules(moved)
    assert core_hash(moved) == core_hash()


def test_a_module_the_core_starts_to_import_is_hashed_without_a_list() -> None:
    context = installed_source("noisybench.context")[0]
    assert "import numpy as np" in context
    new = "SCALE = 1.0\n"
    edited = {"noisybench.context": context.replace("import numpy as np", "import numpy as np\n\nfrom noisybench "
                                                    "import newmath", 1), "noisybench.newmath": new}
    assert "noisybench.newmath" in core_modules(_edited(edited))
    assert core_hash(_edited(edited)) != core_hash(_edited({**edited, "noisybench.newmath": "SCALE = 2.0\n"}))


def _independent_closure() -> dict[str, set[str]]:
    """The core's import closure computed with the layering test's own import parser."""
    from tests.test_layering import imports_of, modules

    mods = modules()
    todo, seen, found = list(fpmod.CORE_ROOTS), set(), {"hashed": set(), "non_numeric": set(), "plugins": set()}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if any(name.startswith(p + ".") for p in fpmod.PLUGIN_PACKAGES):
            found["plugins"].add(name)
            continue
        if name in NON_NUMERIC:
            found["non_numeric"].add(name)
            continue
        found["hashed"].add(name)
        for imported in imports_of(name, mods[name]):
            parts = imported.split(".")
            todo += [p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if p in mods]
    return found


def test_every_module_the_core_imports_is_hashed_or_named_with_a_reason() -> None:
    closure = core_closure()
    assert closure == _independent_closure()
    assert set(NON_NUMERIC) == closure["non_numeric"], "a NON_NUMERIC entry the core no longer imports: remove it"
    assert all(len(reason) > 20 for reason in NON_NUMERIC.values())
    scheme1 = {"noisybench.trainer", "noisybench.method", "noisybench.data", "noisybench.data.prepare",
               "noisybench.data.streaming", "noisybench.noise", "noisybench.seeds", "noisybench.metrics",
               "noisybench.runtime"}  # the hand-kept list of scheme 1: nothing lost
    assert scheme1 <= closure["hashed"] and closure["plugins"] == set()


def test_plugin_packages_are_the_registries_folders() -> None:
    from noisybench.registry import REGISTRIES

    assert sorted(p for r in REGISTRIES.values() for p in r._packages) == sorted(fpmod.PLUGIN_PACKAGES)


NEW_FAMILY = '''
import numpy as np
from noisybench.noise import NoiseModel
from noisybench.registry import register_noise

@register_noise("test-flip-all")
class FlipAll(NoiseModel):
    """Every label to the next class."""

    display_name = "Flip all"

    def corrupt(self, ctx):
        return (ctx.labels + 1) % ctx.num_classes
'''


def test_a_new_noise_family_stales_no_other_run(tmp_path: Path, monkeypatch, capsys) -> None:
    import sys

    from noisybench.cli import main
    from noisybench.registry import NOISES

    runs = [r for noise in ("sym:0.2", "pairflip:0.2", "none") for r in _runs(noise)]
    before = fingerprints(runs)
    NOISES.list()
    monkeypatch.setattr(NOISES, "_items", dict(NOISES._items))
    monkeypatch.setattr(NOISES, "_origins", dict(NOISES._origins))
    (tmp_path / "nb_new_family.py").write_text(NEW_FAMILY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nb_new_family", raising=False)
    __import__("nb_new_family")
    assert fingerprints(runs) == before
    assert fingerprint(_runs("test-flip-all:0.3")[0])["noise"]["module"] == "nb_new_family"
    assert main(["list", "noises"]) == 0
    assert any(line.startswith("test-flip-all") and "nb_new_family" in line
               for line in capsys.readouterr().out.splitlines())


def test_a_constant_changed_in_a_core_module_stales_every_run_and_prose_none(monkeypatch) -> None:
    runs = [r for noise in ("sym:0.2", "pairflip:0.2") for r in _runs(noise)]
    before = fingerprints(runs)
    prose = SEEDS.replace('"""A seed sequence derived', '# why: reproducibility\n    """A seed sequence, derived', 1)
    monkeypatch.setattr(fpmod, "installed_source", _edited({"noisybench.seeds": prose}))
    assert fingerprints(runs) == before
    monkeypatch.setattr(fpmod, "installed_source", _edited({"noisybench.seeds": SEEDS.replace("[:32]", "[:31]")}))
    after = fingerprints(runs)
    assert all(after[r] != before[r] for r in before)


def test_code_this_python_cannot_parse_is_pinned_by_its_text() -> None:
    from noisybench.orchestration.fingerprint import module_hash

    assert module_hash("def f(:\n") != module_hash("def f(:\n    pass\n") != module_hash("")
    assert module_hash("x = 1  # note\n") == module_hash("x = 1\n")
