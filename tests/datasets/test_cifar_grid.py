"""A grid on a CIFAR-format fixture directory runs end to end on CPU through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from noisybench.cli import main
from noisybench.config import parse_grid
from noisybench.plan import expand_grid
from noisybench.store.results import load_results
from tests.datasets.fixtures import write_cifar10

GRID = """
name = "cifar-fixture"
[grid]
datasets = ["cifar10"]
methods = ["ce"]
noise = ["sym:0.2", "asym:0.4"]
seeds = [0]
[train]
protocol = "fast"
epochs = 2
batch_size = 32
arch_kwargs = {widths = [16, 16, 16], stem = 8}
"""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*differs from the official release")
def test_cifar_fixture_grid_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_cifar10(tmp_path / "data", per_batch=40, n_test=40)
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    code = main(["run", str(grid), "--out", str(out), "--workers", "1", "--data-dir", str(tmp_path / "data"),
                 "--strict"])
    assert code == 0, capsys.readouterr().err
    results = load_results(out)
    assert len(results) == 2 and set(results["status"]) == {"done"}
    assert set(results["noise"]) == {"sym:0.2", "asym:0.4"} and set(results["protocol"]) == {"fast"}
    config = json.loads(next(out.rglob("config.json")).read_text())
    assert config["train"]["arch"] == "airbench" and config["train"]["epochs"] == 2
    assert config["data_root"] == str((tmp_path / "data").resolve())


def test_protocols_select_shared_or_fast() -> None:
    def train_of(extra: dict) -> dict:
        grid = parse_grid({"grid": {"datasets": ["cifar100"], "methods": ["ce"], "noise": ["sym:0.5"],
                                    "seeds": [0]}, "train": extra})
        return expand_grid(grid)[0].train.to_dict()

    paper, fast = train_of({}), train_of({"protocol": "fast"})
    assert paper["protocol"] == "shared" and paper["arch"] == "resnet34" and paper["epochs"] == 150
    assert paper["milestones"] == [80, 120] and paper["gamma"] == 0.01 and paper["weight_decay"] == 1e-3
    assert fast["arch"] == "airbench" and fast["epochs"] < paper["epochs"]


def test_missing_data_root_fails_the_run_with_the_layout(tmp_path: Path) -> None:
    grid = parse_grid({"grid": {"datasets": ["cifar10"], "methods": ["ce"], "noise": ["none"], "seeds": [0]},
                       "train": {"protocol": "fast"}, "data": {"root": str(tmp_path / "nowhere")}})
    from noisybench.data.prepare import prepare_data
    from noisybench.errors import DataError

    run = expand_grid(grid)[0]
    with pytest.raises(DataError, match="(?s)lacks data_batch_1.*expected layout"):
        prepare_data(run.dataset.name, run.dataset.params, run.noise, run.seed, data_root=run.data_root)


def test_methods_see_the_protocol_and_length(monkeypatch: pytest.MonkeyPatch) -> None:
    from noisybench.registry import METHODS

    seen = []
    ce = METHODS.get("ce")
    original = ce.resolve_hparams

    def spy(cls, setting, overrides=None):
        seen.append(setting)
        return original(setting, overrides)

    monkeypatch.setattr(ce, "resolve_hparams", classmethod(spy))
    for protocol in ("shared", "fast", "paper"):
        expand_grid(parse_grid({"grid": {"datasets": ["cifar10"], "methods": ["ce"], "noise": ["sym:0.5"],
                                         "seeds": [0]}, "train": {"protocol": protocol}}))
    # CE publishes no recipe: paper falls back to the shared one, and no schedule is the paper's
    assert [(s.protocol, s.epochs, s.paper_epochs, s.paper_schedule) for s in seen] == [
        ("shared", 120, None, False), ("fast", 30, None, False), ("paper", 120, None, False)]
    assert {s.family for s in seen} == {"CIFAR-10"}  # the dataset's declared family reaches the method
