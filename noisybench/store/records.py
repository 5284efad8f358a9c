"""The field types of a run's final record, checked before anything reads it.

A record can be valid JSON and still wrong: a metric stored as a string, ``config.train`` not a
table, a seed written as ``"1"``. Such a record would crash every reader (the report's sort and
means, the closing table), so the store counts it as corrupt, with the field named
(:func:`field_problem`), like a record it cannot parse. Fields a record lacks are not checked here:
old records lack some, and readers take a missing field as empty.
"""

from __future__ import annotations

import math
from typing import Any

_NUMBER = (int, float)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: Where in a record -> (accepts: a type or a test, what it must be). Absent fields and nulls are not checked.
FIELDS: dict[tuple[str, ...], tuple[Any, str]] = {
    ("config", "dataset"): (lambda v: isinstance(v, dict) and isinstance(v.get("name"), str),
                            "a table with a name"),
    ("config", "dataset", "params"): (dict, "a table"),
    ("config", "noise"): (str, "a string"),
    ("config", "method"): (str, "a string"),
    ("config", "seed"): (_is_int, "an integer"),
    ("config", "grid"): (str, "a string"),
    ("config", "train"): (dict, "a table"),
    ("config", "train", "epochs"): (_is_int, "an integer"),
    ("config", "train", "protocol"): (str, "a string"),
    ("config", "hparams"): (dict, "a table"),
    ("config", "hparam_sources"): (dict, "a table"),
    ("config", "sweep"): (dict, "a table"),
    ("config", "tuning"): (dict, "a table"),
    ("config", "tuning", "trial"): (_is_int, "an integer"),
    ("config", "tuning", "budget"): (_is_int, "an integer"),
    ("config", "tuning", "effective_budget"): (_is_int, "an integer"),
    ("config", "tuning", "stage"): (lambda v: v in ("tune", "eval"), "tune or eval"),
    ("config", "tuning", "seeds"): (lambda v: isinstance(v, list) and all(map(_is_int, v)), "a list of integers"),
    ("config", "tuning", "values"): (dict, "a table"),
    ("config", "tuning", "space"): (dict, "a table"),
    ("metrics",): (dict, "a table"),
    ("noise",): (dict, "a table"),
    ("noise", "actual_rate"): (_is_number, "a number"),
    ("noise", "sha256"): (str, "a string"),
    ("reason",): (str, "a string"),
    ("wall_time",): (_is_number, "a number"),
    ("finished_at",): (str, "a string"),
    ("fingerprint_digest",): (str, "a string"),
}


#: :data:`FIELDS` in its order as (the table's path, the key in it, the whole path, accepts, what it must be).
_CHECKS = [(path[:-1], path[-1], path, accepts, wanted) for path, (accepts, wanted) in FIELDS.items()]


def field_problem(record: dict[str, Any]) -> str:
    """The first field of ``record`` whose type is wrong, as ``config.seed is '1' (a str), expected an integer``;
    "" when every field it has is of the right type. Metrics are numbers (or true/false, or null)."""
    tables: dict[tuple[str, ...], Any] = {(): record}  # each table looked up once (this runs for every record)
    for parent, key, path, accepts, wanted in _CHECKS:
        table = tables[parent] if parent in tables else tables.setdefault(parent, _lookup(record, parent))
        value = table.get(key) if isinstance(table, dict) else None
        if value is not None and not (isinstance(value, accepts) if isinstance(accepts, type) else accepts(value)):
            return f"{'.'.join(path)} is {_show(value)}, expected {wanted}"
    metrics = record.get("metrics")
    for name, value in (metrics or {}).items() if isinstance(metrics, dict) else ():
        if value is not None and not isinstance(value, (bool, int, float)):
            return f"metrics.{name} is {_show(value)}, expected a number"
    return ""


def _lookup(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _show(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return f"{text} (a {type(value).__name__})"
