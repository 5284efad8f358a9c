"""The ``[tune]`` table of a grid file: equal tuning budgets on seeds that are not scored.

```toml
[tune]
budget = 8                        # trials per method x dataset x noise setting
seeds  = [1001, 1002]             # tuning seeds: never the [grid] seeds, which are scored
recipe = ["lr", "weight_decay"]   # optional: recipe keys added to every method's space, CE included
[tune.space.alr]                  # optional: this method's whole space, instead of the one it declares
lambda_h = [0.01, 0.05, 0.1]              # a list: exactly these values (Choice)
momentum = { low = 0.8, high = 0.99 }     # uniform; integers for integer bounds; log = true: log-uniform
```

:func:`parse_tune` checks the table's structure and its seeds against the grid's; what needs the methods (their
spaces, hyperparameter names, recipes) is checked by :mod:`noisybench.tuning.trials` when the grid is planned. Both
happen before anything runs, and every refusal names the grid file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from noisybench.errors import ConfigError, suggest
from noisybench.grid_checks import check_seeds
from noisybench.search_space import Choice, Dimension, IntUniform, LogUniform, Uniform
from noisybench.validate import check_distinct

TUNE_KEYS = ("budget", "seeds", "recipe", "space")
#: Recipe keys ``[tune] recipe`` may name, and the range each gets around the recipe's value ``v``.
TUNABLE_RECIPE = {
    "lr": "log-uniform on [v / 3, 3 v] (one decade, centred on the recipe's learning rate)",
    "weight_decay": "log-uniform on [v / 10, 10 v] (two decades; a recipe without weight decay cannot tune it)",
}
#: Why the other recipe keys are not tunable.
UNTUNABLE_REASON = ("it changes the schedule or the data that epoch-based hyperparameters and the validation "
                    "split depend on, or the network itself")
SELECTION_RULE = ("the trial with the best mean noisy-validation accuracy over the tuning seeds (ties to the lower "
                  "trial number); test accuracy is never read")


@dataclass(frozen=True)
class TuneConfig:
    """A parsed ``[tune]`` table.

    Attributes
    ----------
    budget
        Trials per method x dataset x noise setting (trial 0 is the method's default).
    seeds
        Tuning seeds; disjoint from the grid's seeds.
    recipe
        Recipe keys (:data:`TUNABLE_RECIPE`) tuned for every method.
    space
        Per method, a space that replaces the one the method declares (``[tune.space.<method>]``).
    """

    budget: int
    seeds: tuple[int, ...]
    recipe: tuple[str, ...] = ()
    space: dict[str, dict[str, Dimension]] = field(default_factory=dict)

    def describe(self) -> str:
        """``budget 6 on tuning seeds 1001, 1002`` (with the recipe keys)."""
        recipe = f", recipe keys {', '.join(self.recipe)} tuned for every method" if self.recipe else ""
        return f"budget {self.budget} on tuning seeds {', '.join(map(str, self.seeds))}{recipe}"


def parse_tune(table: Any, source: str, grid_seeds: list[int]) -> TuneConfig:
    """Validate a ``[tune]`` table (see the module docstring) against the grid's seeds."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [tune] must be a table with budget and seeds, got {table!r}")
    for key in table:
        if key not in TUNE_KEYS:
            raise ConfigError(f"{source}: unknown key {key!r} in [tune].{suggest(key, TUNE_KEYS)} "
                              f"Allowed: {', '.join(TUNE_KEYS)}")
    budget = table.get("budget")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ConfigError(f"{source}: [tune] budget must be an integer >= 1 (trials per method x dataset x noise "
                          f"setting, the method's default included), got {budget!r}")
    seeds = _seeds(table.get("seeds"), source, grid_seeds)
    recipe = _recipe(table.get("recipe", []), source)
    spaces = table.get("space", {})
    if not isinstance(spaces, dict) or not all(isinstance(v, dict) for v in spaces.values()):
        raise ConfigError(f"{source}: [tune.space] must hold one table per method, e.g. [tune.space.alr] "
                          f"lambda_h = [0.01, 0.1]; got {spaces!r}")
    space = {method: {key: parse_dimension(value, f"{source}: [tune.space.{method}]", key)
                      for key, value in entries.items()} for method, entries in spaces.items()}
    return TuneConfig(budget, seeds, recipe, space)


def _seeds(seeds: Any, source: str, grid_seeds: list[int]) -> tuple[int, ...]:
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"{source}: [tune] seeds must be a non-empty list of integers (seeds the grid does not "
                          f"score, e.g. [1001, 1002]), got {seeds!r}")
    check_seeds(seeds, source, "[tune] seeds")
    shared = [s for s in seeds if s in set(grid_seeds)]
    if shared:
        raise ConfigError(f"{source}: [tune] seeds {', '.join(map(str, shared))} are also [grid] seeds: a value "
                          "chosen on the seeds it is scored on is optimistically biased; pick tuning seeds the grid "
                          f"does not score (e.g. {', '.join(str(1000 + s) for s in grid_seeds[:2])})")
    return tuple(seeds)


def _recipe(keys: Any, source: str) -> tuple[str, ...]:
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"{source}: [tune] recipe must be a list of recipe keys, e.g. [\"lr\", \"weight_decay\"], "
                          f"got {keys!r}")
    from noisybench.method import RECIPE_KEYS

    for key in keys:
        if key not in RECIPE_KEYS:
            raise ConfigError(f"{source}: [tune] recipe: {key!r} is not a recipe key.{suggest(key, RECIPE_KEYS)} "
                              f"Tunable recipe keys: {', '.join(TUNABLE_RECIPE)}")
        if key not in TUNABLE_RECIPE:
            raise ConfigError(f"{source}: [tune] recipe: {key!r} cannot be tuned ({UNTUNABLE_REASON}); tunable recipe "
                              f"keys: {', '.join(TUNABLE_RECIPE)}")
    check_distinct(keys, keys, f"{source}: [tune]", "recipe")
    return tuple(keys)


def parse_dimension(value: Any, table: str, key: str) -> Dimension:
    """A ``[tune.space.<method>]`` entry (``table`` names the file and table): a list of values (Choice) or
    ``{low, high[, log]}`` (a range)."""
    where = f"{table} {key}"
    if isinstance(value, list):
        if len(value) < 2:
            raise ConfigError(f"{where}: list at least two values to choose from, got {value!r} (one value is not a "
                              "search: set it in [methods.<method>])")
        check_distinct(value, [repr(v) for v in value], table, key)
        return Choice(tuple(value), "user")
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a list of values ([0.1, 0.5]) or a range ({{ low = 0.1, high = 0.9 }}), "
                          f"got {value!r}")
    unknown = sorted(set(value) - {"low", "high", "log"})
    if unknown or "low" not in value or "high" not in value:
        raise ConfigError(f"{where}: a range takes low, high and optionally log = true, got {value!r}")
    low, high, log = value["low"], value["high"], value.get("log", False)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numbers or not isinstance(log, bool):
        raise ConfigError(f"{where}: low and high must be numbers and log true or false, got {value!r}")
    try:
        if log:
            return LogUniform(float(low), float(high), "user")
        if isinstance(low, int) and isinstance(high, int):
            return IntUniform(low, high, "user")
        return Uniform(float(low), float(high), "user")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
