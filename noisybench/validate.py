"""Type checks of user-written values (grid tables, hyperparameters, dataset parameters).

TOML gives strings, booleans, integers, floats (``inf`` and ``nan`` included), arrays, tables and
dates; Python's ``bool`` is an ``int`` and a float may be integral. These helpers refuse, with a
one-line message naming where the value came from and the key, any value whose type a field,
a hyperparameter or a dataset parameter does not take, before anything runs.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Union

from noisybench.errors import ConfigError


def describe(hint: Any) -> str:
    """A user's word for the values ``hint`` accepts ("an integer", "a list of integers", ...)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [describe(a) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(options)
    if origin is list:
        args = typing.get_args(hint)
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    if origin is dict or hint is dict:
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string",
            list: "a list"}.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(word: str) -> str:
    return word.replace("an integer", "integers").replace("a finite number", "finite numbers").replace(
        "a string", "strings").replace("true or false", "booleans")


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of type ``hint`` as a grid file may spell it (an int is a float)."""
    if hint is Any:
        return True
    if hint is type(None) or hint is None:
        return value is None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(matches(value, a) for a in typing.get_args(hint))
    if origin is list or hint is list:
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(matches(v, args[0]) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, hint) if isinstance(hint, type) else True


def check_fields(values: dict[str, Any], cls: type, where: str) -> None:
    """Refuse values whose type the dataclass ``cls``'s field of that name does not take."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in values and not matches(values[field.name], hints[field.name]):
            raise ConfigError(f"{where} {field.name} must be {describe(hints[field.name])}, "
                              f"got {values[field.name]!r}")


def check_like_defaults(key: str, value: Any, defaults: list[Any], where: str) -> None:
    """Refuse ``value`` when it is not of the type of any non-null default (an int passes for a float).

    A parameter whose defaults are all null takes any value (its owner checks it).
    """
    kinds = {_kind(d) for d in defaults if d is not None}
    if kinds and not any(matches(value, kind) for kind in kinds):
        wanted = " or ".join(sorted(describe(k) for k in kinds))
        raise ConfigError(f"{where} {key} must be {wanted}, got {value!r}")


def _kind(value: Any) -> Any:
    for kind in (bool, int, float, str, list, dict):
        if isinstance(value, kind):
            return kind
    return type(value)


def check_distinct(values: list[Any], canonical: list[Any], where: str, key: str) -> None:
    """Refuse a list whose entries repeat once written canonically (``sym:0.2`` = ``sym:.20``)."""
    seen: dict[Any, Any] = {}
    for raw, canon in zip(values, canonical):
        if canon in seen:
            twice = f"{raw!r} twice" if seen[canon] == raw else f"{seen[canon]!r} and {raw!r}, both {canon!r}"
            raise ConfigError(f"{where} {key} lists the same entry twice ({twice}); every run would be "
                              "planned and counted twice: list it once")
        seen[canon] = raw
