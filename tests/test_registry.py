"""Registries: decorator registration, duplicates, wildcards, suggestions, entry points."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest

from noisybench import registry
from noisybench.errors import UnknownNameError
from noisybench.registry import PluginError, Registry


def test_register_and_get() -> None:
    reg: Registry = Registry("widget")

    @reg.register("alpha")
    class Alpha:
        name = ""

    assert reg.get("alpha") is Alpha
    assert Alpha.name == "alpha"
    assert "alpha" in reg and len(reg) == 1


def test_duplicate_names_are_refused() -> None:
    reg: Registry = Registry("widget")
    reg.add("a", object())
    with pytest.raises(PluginError, match="registered twice"):
        reg.add("a", object())
    replacement = object()
    reg.add("a", replacement, force=True)
    assert reg.get("a") is replacement


def test_wildcard_listing() -> None:
    reg: Registry = Registry("widget")
    for name in ["dividemix", "mixup", "ce", "gce"]:
        reg.add(name, object())
    assert reg.list("*mix*") == ["dividemix", "mixup"]
    assert reg.list("*ce") == ["ce", "gce"]
    assert reg.list() == ["ce", "dividemix", "gce", "mixup"]


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'gce'"):
        registry.METHODS.get("gcee")
    with pytest.raises(UnknownNameError, match="'digits'"):
        registry.DATASETS.get("digit")


def test_builtins_are_registered() -> None:
    assert {"ce", "gce"} <= set(registry.list_methods())
    assert {"digits", "mnist1d", "blobs"} <= set(registry.list_datasets())
    assert {"sym", "sym-dividemix", "asym", "pairflip", "idn", "human"} <= set(registry.list_noises())
    assert {"mlp", "cnn1d"} <= set(registry.list_models())


def test_entry_point_plugins_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("nb_fake_plugin")

    class FakeMethod:
        name = ""

    module.FakeMethod = FakeMethod  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nb_fake_plugin", module)
    ep = importlib.metadata.EntryPoint("fake-method", "nb_fake_plugin:FakeMethod", "noisybench.methods")
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group=None: [ep] if group == "noisybench.methods" else []
    )
    reg: Registry = Registry("method", entry_point_group="noisybench.methods")
    assert reg.get("fake-method") is FakeMethod


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, group: str, *eps: importlib.metadata.EntryPoint) -> None:
    def fake(group: str | None = None) -> list[importlib.metadata.EntryPoint]:
        return list(eps) if group == wanted else []

    wanted = group
    monkeypatch.setattr(importlib.metadata, "entry_points", fake)


def test_a_taken_name_from_another_origin_is_an_error_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("nb_clash_plugin")
    monkeypatch.setitem(sys.modules, "nb_clash_plugin", module)
    from noisybench.methods.ce import CE

    reg: Registry = Registry("method", entry_point_group="noisybench.methods")
    reg.add("ce", CE)  # the built-in, as discovery registers it

    class Imposter:
        name = ""

    Imposter.__module__, Imposter.__qualname__ = "nb_clash_plugin", "Imposter"
    module.Imposter = Imposter  # type: ignore[attr-defined]
    _fake_entry_points(monkeypatch, "noisybench.methods",
                       importlib.metadata.EntryPoint("ce", "nb_clash_plugin:Imposter", "noisybench.methods"))
    with pytest.raises(PluginError, match=r"(?s)'ce' is registered twice.*noisybench\.methods\.ce\.CE.*"
                                          r"nb_clash_plugin\.Imposter"):
        reg.list()


@pytest.mark.parametrize(("reg", "group"), [(registry.DATASETS, "noisybench.datasets"),
                                            (registry.NOISES, "noisybench.noises"),
                                            (registry.MODELS, "noisybench.models")])
def test_every_plugin_kind_has_an_entry_point_group(reg: Registry, group: str) -> None:
    assert reg._entry_point_group == group


def test_origins_are_recorded_and_listed(capsys: pytest.CaptureFixture) -> None:
    from noisybench.cli import main

    origin = registry.METHODS.origin("dividemix")
    assert (origin.module, origin.distribution) == ("noisybench.methods.dividemix", "noisybench")
    assert registry.DATASETS.origin("cifar10n").module == "noisybench.datasets.cifar10n"
    assert registry.MODELS.origin("airbench").module == "noisybench.archs.airbench"
    assert main(["list", "methods", "elr"]) == 0
    assert "noisybench.methods.elr (noisybench)" in capsys.readouterr().out


def test_a_new_file_in_the_plugin_folder_is_found_without_editing_a_list(tmp_path, monkeypatch) -> None:
    package = tmp_path / "nb_plugins_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "fresh.py").write_text(
        "from tests.test_registry import FOUND\n@FOUND.register('fresh')\nclass Fresh:\n    name = ''\n")
    (package / "_helper.py").write_text("raise RuntimeError('private modules are not imported by discovery')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.discover_modules("nb_plugins_pkg") == ["nb_plugins_pkg", "nb_plugins_pkg.fresh"]
    FOUND.__init__("widget", packages=("nb_plugins_pkg",))
    assert FOUND.list() == ["fresh"] and FOUND.origin("fresh").module == "nb_plugins_pkg.fresh"


FOUND: Registry = Registry("widget")


def test_distribution_of_a_module() -> None:
    from noisybench.registry import distribution_of

    assert distribution_of("noisybench.methods.ce") == "noisybench"
    assert distribution_of("numpy.linalg") == "numpy"
    assert distribution_of("sklearn.mixture") == "scikit-learn"  # import name differs from the distribution's
    assert distribution_of("__main__") == ""
