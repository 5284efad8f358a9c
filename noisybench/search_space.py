"""Search spaces a method declares for equal-budget tuning (``[tune]`` in a grid).

A method returns, from :meth:`noisybench.method.Method.search_space`, a mapping from hyperparameter
names to dimensions: :class:`Choice`, :class:`Uniform`, :class:`LogUniform` or :class:`IntUniform`.
Each dimension records where its range comes from (``source``: ``paper`` for a paper's sensitivity
study, ``paper-default`` for ranges its official code documents, ``suite`` for our own, ``user`` for a
grid's ``[tune.space.<method>]`` table) and maps a
point of the unit interval to a value (:meth:`Dimension.value_at`), so that a low-discrepancy
sequence over the unit cube becomes trials over the space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from noisybench.errors import ConfigError

SPACE_SOURCES = ("paper", "paper-default", "suite", "user")


def _check_source(source: str, what: str) -> None:
    if source not in SPACE_SOURCES:
        raise ValueError(f"{what}: source must be one of {', '.join(SPACE_SOURCES)}, got {source!r}")


def _check_bounds(low: float, high: float, what: str) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{what}: bounds must be finite, got [{low!r}, {high!r}]")
    if not low < high:
        raise ConfigError(f"{what}: the lower bound must be below the upper one, got [{low!r}, {high!r}]")


def _unit(u: float) -> float:
    if not 0.0 <= u <= 1.0:
        raise ValueError(f"a point of the unit interval must lie in [0, 1], got {u!r}")
    return u


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (in the given order; ``value_at`` splits [0, 1] into equal parts)."""

    values: tuple[Any, ...]
    source: str = "suite"

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ConfigError("Choice: needs at least one value")
        if len(set(map(repr, self.values))) != len(self.values):
            raise ConfigError(f"Choice: values repeat: {list(self.values)!r}")
        _check_source(self.source, "Choice")

    @property
    def size(self) -> float:
        """How many distinct values the dimension holds."""
        return float(len(self.values))

    def value_at(self, u: float) -> Any:
        """The value of the part of [0, 1] that ``u`` falls in."""
        return self.values[min(int(_unit(u) * len(self.values)), len(self.values) - 1)]

    def describe(self) -> str:
        """``{a, b, c}``, as plans and reports print it."""
        return "{" + ", ".join(repr(v) for v in self.values) + "}"


@dataclass(frozen=True)
class Uniform:
    """A float uniform on [``low``, ``high``]."""

    low: float
    high: float
    source: str = "suite"

    def __post_init__(self) -> None:
        _check_bounds(self.low, self.high, "Uniform")
        _check_source(self.source, "Uniform")

    size = math.inf

    def value_at(self, u: float) -> float:
        """``low + u (high - low)``."""
        return float(self.low + _unit(u) * (self.high - self.low))

    def describe(self) -> str:
        """``U[low, high]``."""
        return f"U[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class LogUniform:
    """A float whose logarithm is uniform on [log ``low``, log ``high``] (0 < low < high)."""

    low: float
    high: float
    source: str = "suite"

    def __post_init__(self) -> None:
        _check_bounds(self.low, self.high, "LogUniform")
        if self.low <= 0:
            raise ConfigError(f"LogUniform: bounds must be > 0, got [{self.low!r}, {self.high!r}]")
        _check_source(self.source, "LogUniform")

    size = math.inf

    def value_at(self, u: float) -> float:
        """``low (high / low) ** u``."""
        return float(math.exp(math.log(self.low) + _unit(u) * (math.log(self.high) - math.log(self.low))))

    def describe(self) -> str:
        """``logU[low, high]``."""
        return f"logU[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class IntUniform:
    """An integer uniform on {``low``, ..., ``high``} (both included)."""

    low: int
    high: int
    source: str = "suite"

    def __post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int)):
            raise ConfigError(f"IntUniform: bounds must be integers, got [{self.low!r}, {self.high!r}]")
        _check_bounds(self.low, self.high, "IntUniform")
        _check_source(self.source, "IntUniform")

    @property
    def size(self) -> float:
        """How many integers the range holds."""
        return float(self.high - self.low + 1)

    def value_at(self, u: float) -> int:
        """The integer of the part of [0, 1] that ``u`` falls in (equal parts)."""
        count = self.high - self.low + 1
        return int(self.low + min(int(_unit(u) * count), count - 1))

    def describe(self) -> str:
        """``{low..high}``."""
        return f"{{{self.low}..{self.high}}}"


Dimension = Choice | Uniform | LogUniform | IntUniform
#: A method's search space: hyperparameter name -> dimension.
SearchSpace = dict[str, Dimension]


def space_size(space: SearchSpace) -> float:
    """How many distinct points ``space`` holds (``inf`` with a continuous dimension; 1 when empty)."""
    return math.prod(dim.size for dim in space.values()) if space else 1.0
