"""Grid files: parsing, validation of every key, expansion into runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from noisybench.config import TrainConfig, load_grid, parse_grid
from noisybench.errors import ConfigError, NoisybenchError, UnknownNameError
from noisybench.plan import expand_grid
from tests.conftest import TINY_GRID


def grid_from(tmp_path: Path, body: str):
    path = tmp_path / "g.toml"
    path.write_text(body)
    return load_grid(path)


def test_tiny_grid_expands_to_every_combination(tmp_path: Path) -> None:
    runs = expand_grid(grid_from(tmp_path, TINY_GRID))
    assert len(runs) == 4
    assert {(r.method, r.seed) for r in runs} == {("ce", 1), ("ce", 2), ("gce", 1), ("gce", 2)}
    assert len({r.run_id for r in runs}) == 4
    assert all(r.train.epochs == 3 and r.dataset.params["n_samples"] == 400 for r in runs)


def test_run_id_is_stable_and_content_addressed(tmp_path: Path) -> None:
    a = expand_grid(grid_from(tmp_path, TINY_GRID))
    b = expand_grid(grid_from(tmp_path, TINY_GRID.replace('name = "tiny"', 'name = "other"')))
    assert [r.run_id for r in a] == [r.run_id for r in b]  # the grid name is not part of the identity
    c = expand_grid(grid_from(tmp_path, TINY_GRID.replace("epochs = 3", "epochs = 4")))
    assert not {r.run_id for r in a} & {r.run_id for r in c}


def test_hyperparameters_record_provenance(tmp_path: Path) -> None:
    body = TINY_GRID + "[methods.gce]\nq = 0.5\n"
    gce = [r for r in expand_grid(grid_from(tmp_path, body)) if r.method == "gce"][0]
    assert gce.hparams["q"] == 0.5 and gce.hparam_sources["q"] == "user"
    assert gce.hparam_sources["k"] == "paper-default"


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"g\.toml: malformed TOML"):
        grid_from(tmp_path, "name = [unclosed\n")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (("[grid]", "colour = 1\n[grid]"), r"unknown key 'colour' in top level"),
        (('noise = ["sym:0.2"]', 'noise = ["sym:0.2"]\nnoize = ["x"]'), r"unknown key 'noize' in \[grid\].*'noise'"),
        (("epochs = 3", "epochs = 3\nepoch = 3"), r"unknown key 'epoch'.*'epochs'"),
        (("seeds = [1, 2]", "seeds = []"), r"seeds must be a non-empty list"),
        (("seeds = [1, 2]", 'seeds = ["a"]'), r"seeds must be integers"),
    ],
)
def test_unknown_or_bad_keys_name_file_and_key(tmp_path: Path, edit: tuple[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        expand_grid(grid_from(tmp_path, TINY_GRID.replace(*edit)))
    assert "g.toml" in str(info.value)


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (('methods = ["ce", "gce"]', 'methods = ["cee"]'), UnknownNameError, "unknown method 'cee'. Did you mean 'ce'"),
        (('datasets = ["blobs"]', 'datasets = ["blob"]'), UnknownNameError, "Did you mean 'blobs'"),
        (('noise = ["sym:0.2"]', 'noise = ["symetric:0.2"]'), UnknownNameError, "unknown noise 'symetric'"),
        (('noise = ["sym:0.2"]', 'noise = ["sym:1.5"]'), ConfigError, r"outside \[0, 1\)"),
        (('noise = ["sym:0.2"]', 'noise = ["asym:0.4"]'), ConfigError, "dataset 'blobs' has none"),
        (("n_samples = 400", "n_sample = 400"), ConfigError, "dataset 'blobs' has no parameter"),
        (("epochs = 3", "epochs = 3\n[methods.gce]\nqq = 1"), ConfigError, r"unknown hyperparameter 'qq'.*'q'"),
        (("epochs = 3", "epochs = 3\n[methods.gce]\nq = 2.0"), ConfigError, r"q must be in \(0, 1\]"),
        (("epochs = 3", "epochs = 0"), ConfigError, "epochs must be >= 1"),
        (("epochs = 3", 'protocol = "gpu"'), ConfigError, "no.*protocol 'gpu'|protocol 'gpu' is not available"),
        (("epochs = 3", 'profile = "paper"'), ConfigError, 'profile was replaced by protocol.*protocol = "shared"'),
    ],
)
def test_bad_names_and_values(tmp_path: Path, edit: tuple[str, str], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        expand_grid(grid_from(tmp_path, TINY_GRID.replace(*edit)))


def test_missing_grid_file() -> None:
    with pytest.raises(NoisybenchError, match="does not exist"):
        load_grid("no/such/grid.toml")


def test_train_config_validates() -> None:
    with pytest.raises(ConfigError, match="schedule must be"):
        TrainConfig.from_dict({"schedule": "linear"})
    assert TrainConfig.from_dict({"epochs": 2}).epochs == 2


def test_missing_grid_table() -> None:
    with pytest.raises(ConfigError, match=r"missing \[grid\]"):
        parse_grid({"name": "x"})
