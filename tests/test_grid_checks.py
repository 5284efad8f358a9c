"""Bad grid input through ``noisybench run``: exit 2, one line naming the file and the key, nothing written.

Each case edits the tiny grid (or writes bytes) and runs ``noisybench run GRID`` without ``--out``
in an empty working directory, so a bad ``name`` could only write into it (``results/..``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from noisybench.cli import main
from noisybench.errors import ConfigError
from noisybench.grid_checks import SEED_LIMIT, check_name, check_seeds
from tests.conftest import TINY_GRID

TRAIN_SIZE = 300  # 400 blobs, test_fraction 0.25


def edit(old: str, new: str) -> Callable[[Path], bytes]:
    assert old in TINY_GRID, old
    return lambda _: TINY_GRID.replace(old, new, 1).encode()


def add(text: str) -> Callable[[Path], bytes]:
    return lambda _: (TINY_GRID + text).encode()


def label_file(name: str, labels: np.ndarray | str) -> Callable[[Path], bytes]:
    def write(folder: Path) -> bytes:
        if isinstance(labels, str):
            (folder / name).write_text(labels)
        else:
            np.save(folder / name, labels)
        return TINY_GRID.replace('noise = ["sym:0.2"]', f'noise = ["human:{name}"]').encode()

    return write


NOISE = 'noise = ["sym:0.2"]'
EMOJI_NAME = "\U0001F600" * 100  # 100 characters, 400 bytes in UTF-8: too long for a file name
#: id -> (grid writer, the key the message must name)
CASES: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "epochs-string": (edit("epochs = 3", 'epochs = "ten"'), "[train] epochs"),
    "epochs-float": (edit("epochs = 3", "epochs = 2.5"), "[train] epochs"),
    "epochs-bool": (edit("epochs = 3", "epochs = true"), "[train] epochs"),
    "epochs-zero": (edit("epochs = 3", "epochs = 0"), "epochs"),
    "lr-string": (edit("epochs = 3", 'epochs = 3\nlr = "x"'), "[train] lr"),
    "lr-nan": (edit("epochs = 3", "epochs = 3\nlr = nan"), "[train] lr"),
    "batch-size-float": (edit("epochs = 3", "epochs = 3\nbatch_size = 1.5"), "[train] batch_size"),
    "milestones-strings": (edit("epochs = 3", 'epochs = 3\nmilestones = ["a"]'), "[train] milestones"),
    "protocol-int": (edit("epochs = 3", "epochs = 3\nprotocol = 3"), "protocol"),
    "train-unknown-key": (edit("epochs = 3", "epochs = 3\nepochz = 1"), "'epochz'"),
    "gce-q-string": (add('[methods.gce]\nq = "x"\n'), "[methods.gce] q"),
    "gce-unknown-hparam": (add("[methods.gce]\nqq = 0.5\n"), "[methods.gce]"),
    "methods-not-a-table": (add("[methods]\ngce = 3\n"), "[methods.gce]"),
    "methods-table-unknown": (add("[methods.gcee]\nq = 0.5\n"), "[methods.gcee]"),
    "sweep-refused": (add("[sweep.gce]\nq = [0.5, 0.7]\n"), "[tune.space.gce] q = [0.5, 0.7]"),
    "tune-budget-zero": (add("[tune]\nbudget = 0\nseeds = [11]\n"), "[tune] budget"),
    "tune-seeds-overlap": (add("[tune]\nbudget = 3\nseeds = [1, 11]\n"), "[tune] seeds"),
    "tune-recipe-key": (add("[tune]\nbudget = 3\nseeds = [11]\nrecipe = [\"arch\"]\n"), "[tune] recipe"),
    "tune-space-repeated-value": (add("[tune]\nbudget = 3\nseeds = [11]\n[tune.space.gce]\nq = [0.5, 0.5]\n"),
                                  "[tune.space.gce] q"),
    "tune-space-infinite": (add("[tune]\nbudget = 3\nseeds = [11]\n[tune.space.gce]\nq = { low = 0.1, high = inf }\n"),
                            "[tune.space.gce] q"),
    "tune-space-empty": (lambda _: (TINY_GRID.replace('methods = ["ce", "gce"]', 'methods = ["ce"]')
                                    + "[tune]\nbudget = 3\nseeds = [11]\n").encode(), "[tune] budget"),
    "tune-without-validation": (edit("epochs = 3", "epochs = 3\nval_fraction = 0.0\n[tune]\nbudget = 3\nseeds = [11]"),
                                "[tune] selects on noisy validation"),
    "dataset-param-string": (edit("n_samples = 400", 'n_samples = "x"'), "[datasets.blobs] n_samples"),
    "dataset-param-unknown": (edit("n_samples = 400", "n_samples = 400\nnope = 1"), "[datasets.blobs]"),
    "seeds-repeated": (edit("seeds = [1, 2]", "seeds = [1, 1]"), "[grid] seeds"),
    "seeds-huge": (edit("seeds = [1, 2]", f"seeds = [{2**70}]"), "[grid] seeds"),
    "seeds-negative": (edit("seeds = [1, 2]", "seeds = [-1]"), "[grid] seeds"),
    "seeds-float": (edit("seeds = [1, 2]", "seeds = [1.5]"), "[grid] seeds"),
    "noise-repeated-spelling": (edit(NOISE, 'noise = ["sym:0.2", "sym:.20"]'), "[grid] noise"),
    "methods-repeated": (edit('methods = ["ce", "gce"]', 'methods = ["ce", "ce"]'), "[grid] methods"),
    "method-unknown": (edit('methods = ["ce", "gce"]', 'methods = ["gcee"]'), "[grid] methods"),
    "dataset-unknown": (edit('datasets = ["blobs"]', 'datasets = ["mnist-1d"]'), "[grid] datasets"),
    "noise-unknown": (edit(NOISE, 'noise = ["sim:0.2"]'), "[grid] noise"),
    "noise-rate-range": (edit(NOISE, 'noise = ["sym:1.2"]'), "[grid] noise"),
    "noise-asym-on-blobs": (edit(NOISE, 'noise = ["asym:0.4"]'), "[grid] noise"),
    "human-file-missing": (edit(NOISE, 'noise = ["human:missing.npy"]'), "[grid] noise"),
    "human-file-short": (label_file("short.npy", np.zeros(10, dtype=np.int64)), "[grid] noise"),
    "human-file-range": (label_file("range.npy", np.full(TRAIN_SIZE, 7)), "[grid] noise"),
    "human-file-text": (label_file("words.txt", "a b c\n"), "[grid] noise"),
    "human-file-fractions": (label_file("frac.npy", np.full(TRAIN_SIZE, 0.5)), "[grid] noise"),
    "name-dotdot": (edit('name = "tiny"', 'name = ".."'), "name"),
    "name-dot": (edit('name = "tiny"', 'name = "."'), "name"),
    "name-nul": (edit('name = "tiny"', 'name = "a\\u0000b"'), "name"),
    "name-slash": (edit('name = "tiny"', 'name = "a/b"'), "name"),
    "name-int": (edit('name = "tiny"', "name = 3"), "name"),
    "description-int": (edit('name = "tiny"', 'name = "tiny"\ndescription = 3'), "description"),
    "data-root-int": (add("[data]\nroot = 3\n"), "[data] root"),
    "slurm-cpus-string": (add('[slurm]\ncpus = "x"\n'), "[slurm] cpus"),
    "not-utf8": (lambda _: TINY_GRID.replace("tiny", "t\xe9st").encode("latin-1"), "UTF-8"),
    "malformed-toml": (edit("[grid]", "[grid\n"), "malformed TOML"),
    # [train] values that pass a type check and would then fail every run, or train garbage
    "weight-decay-negative": (edit("epochs = 3", "epochs = 3\nweight_decay = -5e-4"), "[train] weight_decay"),
    "eval-batch-size-zero": (edit("epochs = 3", "epochs = 3\neval_batch_size = 0"), "[train] eval_batch_size"),
    "gamma-negative": (edit("epochs = 3", 'epochs = 3\nschedule = "step"\nmilestones = [1]\ngamma = -0.1'),
                       "[train] gamma"),
    "milestones-outside": (edit("epochs = 3", 'epochs = 3\nschedule = "step"\nmilestones = [5]'),
                           "[train] milestones"),
    "milestones-zero": (edit("epochs = 3", 'epochs = 3\nschedule = "step"\nmilestones = [0, 1]'),
                        "[train] milestones"),
    "milestones-unsorted": (edit("epochs = 3", 'epochs = 4\nschedule = "step"\nmilestones = [2, 1]'),
                            "[train] milestones"),
    "milestones-repeated": (edit("epochs = 3", 'epochs = 4\nschedule = "step"\nmilestones = [2, 2]'),
                            "[train] milestones"),
    "momentum-5": (edit("epochs = 3", "epochs = 3\nmomentum = 5"), "[train] momentum"),
    "arch-unknown": (edit("epochs = 3", 'epochs = 3\narch = "resnet999"'), "[train] arch"),
    "arch-kwargs-not-a-table": (edit("epochs = 3", "epochs = 3\narch_kwargs = 3"), "[train] arch_kwargs"),
    "arch-kwargs-unknown-key": (edit("epochs = 3", "epochs = 3\narch_kwargs = {hiden = [8]}"),
                                "[train] arch_kwargs"),
    "arch-kwargs-wrong-type": (edit("epochs = 3", 'epochs = 3\narch_kwargs = {hidden = "wide"}'),
                               "[train] arch_kwargs"),
    "val-fraction-leaves-no-training-set": (edit("epochs = 3", "epochs = 3\nval_fraction = 0.999"),
                                            "[train] val_fraction"),
    "val-fraction-holds-out-nothing": (edit("epochs = 3", "epochs = 3\nval_fraction = 0.001"),
                                       "[train] val_fraction"),
    "tiny-dataset-without-validation": (edit("n_samples = 400", "n_samples = 16"), "val_fraction"),
    "name-too-long-in-bytes": (edit('name = "tiny"', f'name = "{EMOJI_NAME}"'), "name"),
}
if not torch.cuda.is_available():
    CASES["device-cuda-without-gpu"] = (edit("epochs = 3", 'epochs = 3\ndevice = "cuda"'), "[train] device")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_grid_is_refused_up_front(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture) -> None:
    writer, key = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    grid = work / "g.toml"
    grid.write_bytes(writer(work))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["run", str(grid), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"noisybench: error: {grid}: "), err
    assert key in lines[0], err
    assert "Traceback" not in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("name", ["quick", "cifar-n", "sym 0.2 run", "a.b_c"])
def test_plain_names_are_accepted(name: str) -> None:
    check_name(name, "g.toml")


def test_seed_range_is_zero_to_two_to_the_63() -> None:
    check_seeds([0, SEED_LIMIT - 1], "g.toml")
    for bad in ([-1], [SEED_LIMIT], [True]):
        with pytest.raises(ConfigError, match=r"g\.toml: \[grid\] seeds"):
            check_seeds(bad, "g.toml")
