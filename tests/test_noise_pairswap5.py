"""`asym-pairswap5` (noisybench.noises.pairswap5): a random pair per block of five classes swapped with rate r."""

from __future__ import annotations

import numpy as np
import pytest

from noisybench.config import Grid
from noisybench.errors import ConfigError
from noisybench.facts import NoiseKind
from noisybench.noise import realize_noise
from noisybench.noises.pairswap5 import block_pairswap_matrix
from noisybench.plan import expand_grid
from noisybench.registry import NOISES

LABELS = np.repeat(np.arange(100), 400)


def _transitions(seed: int) -> np.ndarray:
    return np.array(realize_noise("asym-pairswap5:0.4", LABELS, 100, seed, dataset_id="d").transition_counts)


def test_one_random_pair_per_block_swaps_at_the_rate() -> None:
    counts = _transitions(1)
    moved = counts - np.diag(np.diag(counts))
    for start in range(0, 100, 5):
        block = moved[start : start + 5, start : start + 5]
        pairs = np.argwhere(block > 0)
        assert len(pairs) == 2 and set(map(tuple, pairs)) == {(pairs[0][0], pairs[0][1]), (pairs[0][1], pairs[0][0])}
        assert moved[start : start + 5].sum() == block.sum()  # nothing leaves the block
    swapped_rows = moved.sum(axis=1)[moved.sum(axis=1) > 0] / 400
    assert len(swapped_rows) == 40 and abs(swapped_rows.mean() - 0.4) < 0.02  # per-sample draws around r


def test_the_realisation_is_a_function_of_the_seed() -> None:
    assert np.array_equal(_transitions(1), _transitions(1))
    assert not np.array_equal(_transitions(1) > 0, _transitions(2) > 0)  # other pairs under another seed


def test_the_matrix_is_row_stochastic_with_a_symmetric_pair_per_block() -> None:
    T = block_pairswap_matrix(10, 0.3, np.random.default_rng(0))
    assert np.allclose(T.sum(axis=1), 1) and np.allclose(T, T.T)
    assert (np.diag(T) == 0.7).sum() == 4 and (np.diag(T) == 1).sum() == 6


def test_it_is_class_conditional_and_refused_where_classes_do_not_split_into_fives() -> None:
    model = NOISES.get("asym-pairswap5")
    assert model.kind is NoiseKind.CLASS_CONDITIONAL and model.class_map == "block-pairswap"
    grid = Grid(name="g", datasets=["digits"], methods=["ce"], noise=["asym-pairswap5:0.4"], seeds=[1],
                source="g.toml")
    assert expand_grid(grid)[0].noise == "asym-pairswap5:0.4"  # ten classes: two blocks
    with pytest.raises(ConfigError, match="divisible by 5"):
        realize_noise("asym-pairswap5:0.4", np.arange(40) % 4, 4, 1)
