"""Registries: decorator registration, duplicates, wildcards, suggestions, entry points."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest

from noisybench import registry
from noisybench.errors import UnknownNameError
from noisybench.registry import Registry


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
    with pytest.raises(KeyError, match="already registered"):
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


def test_broken_entry_point_warns_not_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = importlib.metadata.EntryPoint("broken", "nb_no_such_module:X", "noisybench.methods")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [ep])
    reg: Registry = Registry("method", entry_point_group="noisybench.methods")
    with pytest.warns(UserWarning, match="could not load method plugin 'broken'"):
        assert reg.list() == []
