"""``noisybench check-method``: the conformance checks on any installed method, with readable failures."""

from __future__ import annotations

from typing import Any

import pytest

from noisybench.cli import main
from noisybench.registry import METHODS
from noisybench.search_space import LogUniform, Uniform

ELR = METHODS.get("elr")


class StatelessELR(ELR):
    """ELR whose author forgot the checkpoint hooks: its targets restart from zero on resume."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class TypoELR(ELR):
    """ELR with a misspelt hyperparameter name."""

    def training_step(self, ctx, batch, epoch):  # noqa: ANN001, ANN201
        return ctx.nets[0](batch.x).sum() * self.hp["alpah"]


def test_a_builtin_passes(capsys: pytest.CaptureFixture) -> None:
    assert main(["check-method", "ce"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["PASS contract", "PASS determinism", "PASS resume", "PASS history", "PASS extensions",
                   "PASS search-space", "PASS reference-functions"]


def test_a_method_without_state_dict_fails_readably(plugin, capsys: pytest.CaptureFixture) -> None:
    plugin("elr-stateless", StatelessELR)
    assert main(["check-method", "elr-stateless"]) == 1
    captured = capsys.readouterr()
    assert ("FAIL resume: state not restored after resume: buffer 'targets' differs at epoch 2 "
            "(stopped after epoch 1); state_dict() does not return it") in captured.out
    assert "PASS determinism" in captured.out and "5 passed, 2 failed" in captured.err
    assert "FAIL extensions: under a recipe with phases" in captured.out  # the same forgotten state


def test_an_exception_names_the_line_that_raised(plugin, capsys: pytest.CaptureFixture) -> None:
    plugin("elr-typo", TypoELR)
    assert main(["check-method", "elr-typo"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL determinism: KeyError: 'alpah' (at {__file__}:" in out and "in training_step)" in out


class WideELR(ELR):
    """ELR whose search space reaches beta = 1, which its checks refuse."""

    @classmethod
    def search_space(cls, setting, hparams=None):  # noqa: ANN001, ANN206
        return {"beta": Uniform(0.5, 1.0), "lam": LogUniform(0.3, 10.0)}


class MisnamedSpaceELR(ELR):
    """ELR whose search space names a hyperparameter it does not have."""

    @classmethod
    def search_space(cls, setting, hparams=None):  # noqa: ANN001, ANN206
        return {"lambda": LogUniform(0.3, 10.0)}


def test_a_search_space_with_refused_points_fails_readably(plugin, capsys: pytest.CaptureFixture) -> None:
    plugin("elr-wide", WideELR)
    plugin("elr-misnamed", MisnamedSpaceELR)
    assert main(["check-method", "elr-wide"]) == 1
    out = capsys.readouterr().out
    assert "FAIL search-space: with 1 epochs, symmetric noise: point beta = 1.0, lam = 0.3: " in out
    assert "beta must be in [0, 1), got 1.0" in out
    assert main(["check-method", "elr-misnamed"]) == 1
    assert "FAIL search-space: with 1 epochs, symmetric noise: 'lambda' is not a hyperparameter" in \
        capsys.readouterr().out


def test_unknown_method_and_bad_hparam_are_user_errors(capsys: pytest.CaptureFixture) -> None:
    assert main(["check-method", "elrr"]) == 2
    assert "Did you mean 'elr'" in capsys.readouterr().err
    assert main(["check-method", "elr", "--hparam", "bta=0.5"]) == 2
    assert "unknown hyperparameter 'bta'" in capsys.readouterr().err
