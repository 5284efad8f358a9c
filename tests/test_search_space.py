"""Search-space dimensions: unit-interval mapping, sizes, refused bounds."""

from __future__ import annotations

import math

import pytest

from noisybench.errors import ConfigError
from noisybench.search_space import Choice, IntUniform, LogUniform, Uniform, space_size


def test_choice_splits_the_unit_interval_into_equal_parts() -> None:
    dim = Choice((0.1, 0.5, 0.9))
    assert [dim.value_at(u) for u in (0.0, 0.33, 0.34, 0.66, 0.67, 1.0)] == [0.1, 0.1, 0.5, 0.5, 0.9, 0.9]
    assert dim.size == 3


def test_continuous_dimensions_map_the_ends_and_the_middle() -> None:
    assert Uniform(0.2, 0.6).value_at(0.5) == pytest.approx(0.4)
    log = LogUniform(1e-3, 1e-1)
    assert (log.value_at(0.0), log.value_at(1.0)) == (pytest.approx(1e-3), pytest.approx(1e-1))
    assert log.value_at(0.5) == pytest.approx(1e-2)
    ints = IntUniform(2, 4)
    assert [ints.value_at(u) for u in (0.0, 0.34, 0.67, 1.0)] == [2, 3, 4, 4] and ints.size == 3


def test_space_size_is_infinite_with_a_continuous_dimension() -> None:
    assert space_size({}) == 1
    assert space_size({"a": Choice((1, 2)), "b": IntUniform(0, 2)}) == 6
    assert math.isinf(space_size({"a": Choice((1, 2)), "b": Uniform(0.0, 1.0)}))


@pytest.mark.parametrize("make", [lambda: Uniform(0.0, math.inf), lambda: LogUniform(0.0, 1.0),
                                  lambda: Uniform(1.0, 1.0), lambda: IntUniform(3, 1), lambda: Choice(()),
                                  lambda: Uniform(float("nan"), 1.0), lambda: Choice((1, 1))])
def test_bad_dimensions_are_refused(make) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError):
        make()


def test_points_outside_the_unit_interval_are_refused() -> None:
    with pytest.raises(ValueError):
        Uniform(0.0, 1.0).value_at(1.5)
