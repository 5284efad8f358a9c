"""Conformance checks of a method plugin, with failures a plugin author can act on.

``noisybench check-method NAME`` and ``tests/methods/test_conformance.py`` run the same checks on
a few tiny runs (400 four-class blobs, three epochs, on the CPU) through the shared trainer:

* ``contract``: hyperparameters resolve with a known provenance and are JSON values;
* ``determinism``: the same seed gives the same history, another seed a different one;
* ``resume``: a run stopped after an epoch and resumed from its checkpoint in a fresh trainer and
  method ends with the same history and the same method state as one that ran straight through
  (a buffer missing from ``state_dict`` is named, with the epoch where it first differs);
* ``history``: every epoch records the base columns as numbers and the final metrics are complete;
* ``extensions``: under a recipe that sets every recipe key of the contract's extensions (two phases
  with a new optimiser at the boundary; warm-restart cosine with a floor, gradient clipping, per-step
  decay and per-module weight decay, then Adam under the linear tail with its beta_1 switch; a named
  augmentation policy), the method trains, and resumes exactly across the phase boundary.
* ``search-space``: the space the method declares for ``[tune]`` names its hyperparameters with typed dimensions,
  and every corner and every trial point of a budget of 8 resolves and passes ``check_hparams``, on short and
  long schedules and under symmetric and class-conditional noise.
* ``reference-functions``: where the method's module declares ``REFERENCE_FUNCTIONS`` (its pure numerics, for
  replaying recorded vectors of the official code), it is a tuple of the module's own module-level functions, given
  as function objects (names as strings are accepted too).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from noisybench import method as method_module
from noisybench.config import Grid, RunConfig
from noisybench.errors import raised_at
from noisybench.method import SOURCES, Method, TrainContext
from noisybench.plan import expand_grid
from noisybench.store import Checkpoint, ResultStore
from noisybench.trainer import Trainer

EPOCHS = 3
#: The ``extensions`` check's recipe: every recipe key added to the contract, at a non-neutral value.
EXTENDED_RECIPE: dict[str, Any] = {
    "epochs": 4, "lr": 0.05, "augment": "weak",
    "phases": [
        {"epochs": 2, "schedule": "cosine-restarts", "restart_every": 2, "eta_min": 0.001, "grad_clip_norm": 5.0,
         "lr_decay_per_step": 1e-3, "weight_decay_by_module": {"kernels": 1e-3}},
        {"epochs": 2, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "linear-tail",
         "milestones": [0], "adam_beta1_tail": 0.1},
    ],
}
BASE_COLUMNS = ("epoch", "lr", "train_loss", "val_acc", "test_acc", "epoch_time", "peak_mem_mb")
METRICS = ("val_selected", "last", "mean_last_k", "best_on_test", "epochs_run")
VOLATILE = frozenset({"epoch_time", "peak_mem_mb"})


@dataclass
class CheckResult:
    """One check's outcome: ``detail`` says what is wrong (and how to fix it) when ``ok`` is false."""

    name: str
    ok: bool
    detail: str = ""

    def render(self) -> str:
        """``PASS name`` or ``FAIL name: detail``."""
        return f"PASS {self.name}" if self.ok else f"FAIL {self.name}: {self.detail}"


def probe_grid(method: str, hparams: dict[str, Any] | None = None, epochs: int = EPOCHS, seed: int = 1,
               noise: str = "sym:0.4", train: dict[str, Any] | None = None) -> Grid:
    """The one-run grid of ``method`` on 400 four-class blobs (8 dims) on the CPU (``train``: more recipe keys)."""
    return Grid(
        name="conformance", datasets=["blobs"], methods=[method], noise=[noise], seeds=[seed],
        train={"epochs": epochs, "device": "cpu", **(train or {})},
        method_params={method: dict(hparams)} if hparams else {},
        dataset_params={"blobs": {"n_samples": 400, "dim": 8, "classes": 4}}, source="probe run",
    )


def probe_run(method: str, hparams: dict[str, Any] | None = None, epochs: int = EPOCHS, seed: int = 1,
              noise: str = "sym:0.4", train: dict[str, Any] | None = None) -> RunConfig:
    """A resolved run of ``method`` on 400 four-class blobs (8 dims) on the CPU (``train``: more recipe keys)."""
    return expand_grid(probe_grid(method, hparams, epochs, seed, noise, train))[0]


@dataclass
class Observed:
    """A trained probe: the trainer's output, the method's state after every epoch, and the epochs trained."""

    out: dict[str, Any]
    states: dict[int, dict[str, Any]] = field(default_factory=dict)
    method: Method | None = None


def observe(config: RunConfig, checkpoint: Checkpoint | None = None,
            stop_after: int | None = None) -> Observed:
    """Train ``config``, snapshotting the method's state at every epoch end (stop after ``stop_after`` epochs)."""
    observed = Observed(out={})

    class _Trainer(Trainer):
        def setup(self) -> Any:
            ctx, method = super().setup()
            observed.method = method
            return ctx, method

    def on_epoch(history: list[dict[str, Any]]) -> None:
        assert observed.method is not None
        observed.states[history[-1]["epoch"]] = snapshot(observed.method)
        if stop_after is not None and len(history) == stop_after:
            raise _Stop

    try:
        observed.out = _Trainer(config, checkpoint=checkpoint, on_epoch=on_epoch).run()
    except _Stop:
        pass
    return observed


class _Stop(Exception):
    pass


def snapshot(method: Method) -> dict[str, Any]:
    """The method's own state: every tensor, number and string reachable from its attributes, by dotted name."""
    found: dict[str, Any] = {}

    def walk(name: str, value: Any, depth: int) -> None:
        if isinstance(value, torch.Tensor):
            found[name] = value.detach().cpu().clone()
        elif isinstance(value, (bool, int, float, str)) or value is None:
            found[name] = value
        elif isinstance(value, torch.nn.Module) and depth < 4:
            for key, tensor in value.state_dict().items():
                walk(f"{name}.{key}", tensor, depth + 1)
        elif isinstance(value, dict) and depth < 4:
            for key, item in value.items():
                walk(f"{name}.{key}", item, depth + 1)
        elif isinstance(value, (list, tuple)) and depth < 4:
            for i, item in enumerate(value):
                walk(f"{name}[{i}]", item, depth + 1)

    for key, value in vars(method).items():
        if key != "hp":
            walk(key, value, 0)
    return found


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def stable(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History rows without the columns that vary between identical runs (timings, memory)."""
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in history]


def first_difference(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> str:
    """Where two histories first differ: ``epoch 2, column 'test_acc': 41.0 vs 40.5`` ("" if equal)."""
    for row_a, row_b in zip(a, b):
        for key in sorted(set(row_a) | set(row_b)):
            if not _same(row_a.get(key), row_b.get(key)):
                return f"epoch {row_a.get('epoch')}, column {key!r}: {row_a.get(key)!r} vs {row_b.get(key)!r}"
    return "" if len(a) == len(b) else f"{len(a)} vs {len(b)} epochs"


class Probe:
    """The checks of one method (and hyperparameters); the straight run is trained once and shared."""

    def __init__(self, method: str, hparams: dict[str, Any] | None = None, epochs: int = EPOCHS,
                 train: dict[str, Any] | None = None) -> None:
        self.method, self.hparams = method, dict(hparams or {})
        self.epochs = int((train or {}).get("epochs", epochs))
        self.config = probe_run(method, self.hparams, self.epochs, train=train)
        self._straight: Observed | None = None

    def straight(self) -> Observed:
        """The uninterrupted run (trained on first use)."""
        if self._straight is None:
            self._straight = observe(self.config)
        return self._straight

    def contract(self) -> CheckResult:
        """Hyperparameters resolve to JSON values with a known provenance."""
        config = self.config
        unknown = {k: s for k, s in config.hparam_sources.items() if s not in SOURCES}
        if unknown:
            return CheckResult("contract", False, f"hyperparameter sources {unknown} are not among {SOURCES}")
        try:
            json.dumps(config.hparams, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return CheckResult("contract", False, f"hyperparameters must be JSON values (they name the run): {exc}")
        return CheckResult("contract", True)

    def determinism(self) -> CheckResult:
        """Same seed, same history; another seed, another history."""
        a = stable(self.straight().out["history"])
        b = stable(observe(self.config).out["history"])
        where = first_difference(a, b)
        if where:
            return CheckResult("determinism", False, f"two runs with the same seed differ at {where}; draw randomness "
                               "only from ctx.generator / ctx.rng (reseeded every epoch)")
        other = stable(observe(dataclasses.replace(self.config, seed=2)).out["history"])
        if other == a:
            return CheckResult("determinism", False, "seeds 1 and 2 give the same history; the seed is ignored")
        return CheckResult("determinism", True)

    def resume(self, stop_after: int | None = None) -> CheckResult:
        """Stop after ``stop_after`` epochs (default: all but one), resume in a fresh trainer, compare."""
        stop_after = self.epochs - 1 if stop_after is None else stop_after
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = ResultStore(folder).checkpoint(self.config.run_id)
            observe(self.config, checkpoint, stop_after=stop_after)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                saved = checkpoint.load()
            if saved is None:
                why = "; ".join(str(w.message) for w in caught) or "no checkpoint was written"
                return CheckResult("resume", False, f"the checkpoint cannot be read back ({why}); state_dict() "
                                   "must return only tensors and plain Python values")
            resumed = observe(self.config, checkpoint)
        return self._compare_resumed(resumed, stop_after)

    def _compare_resumed(self, resumed: Observed, stop_after: int) -> CheckResult:
        straight = self.straight()
        trained = sorted(resumed.states)
        if trained != list(range(stop_after, self.epochs)):
            return CheckResult("resume", False, f"the resumed run trained epochs {trained}, expected "
                               f"{list(range(stop_after, self.epochs))}")
        saved = set(resumed.method.state_dict()) if resumed.method is not None else set()
        for epoch in trained:
            for name, value in straight.states[epoch].items():
                if not _same(value, resumed.states[epoch].get(name)):
                    root = name.split(".")[0].split("[")[0]
                    hint = ("state_dict() does not return it: add it there and restore it in load_state_dict()"
                            if root not in saved else "load_state_dict() does not restore it exactly")
                    return CheckResult("resume", False, f"state not restored after resume: buffer {name!r} differs "
                                       f"at epoch {epoch} (stopped after epoch {stop_after - 1}); {hint}")
        where = first_difference(stable(straight.out["history"]), stable(resumed.out["history"]))
        if where:
            return CheckResult("resume", False, f"history differs after resume at {where}; some state that "
                               "changes training (a counter, a random generator) is not in state_dict()")
        return CheckResult("resume", True)

    def history(self) -> CheckResult:
        """Every epoch has the base columns as finite numbers; the final metrics are complete."""
        out = self.straight().out
        if len(out["history"]) != self.epochs:
            return CheckResult("history", False, f"{len(out['history'])} history rows for {self.epochs} epochs")
        for row in out["history"]:
            bad = [c for c in BASE_COLUMNS if not isinstance(row.get(c), (int, float)) or isinstance(row.get(c), bool)]
            if bad:
                return CheckResult("history", False, f"epoch {row.get('epoch')} lacks numeric {bad}; train_epoch() "
                                   "must return {'train_loss': ...} and end_epoch() a dict of numbers")
        missing = [m for m in METRICS if m not in out["metrics"]]
        if missing:
            return CheckResult("history", False, f"final metrics lack {missing}")
        return CheckResult("history", True)

    def extensions(self) -> CheckResult:
        """Train under :data:`EXTENDED_RECIPE` and resume exactly across its phase boundary."""
        result = Probe(self.method, self.hparams, train=EXTENDED_RECIPE).resume(stop_after=2)
        detail = f"under a recipe with phases, clipping, per-step decay and Adam's beta_1 switch: {result.detail}"
        return CheckResult("extensions", result.ok, "" if result.ok else detail)

    def search_space(self) -> CheckResult:
        """The declared search space resolves everywhere (see :func:`noisybench.tuning.trials.check_space`)."""
        from noisybench.facts import NoiseKind
        from noisybench.plan import plan_cells
        from noisybench.tuning.trials import check_space

        cell = plan_cells(self._grid())[0]
        hparams = dict(self.config.hparams)
        variants = [dataclasses.replace(cell.setting, epochs=e) for e in (1, 2, EPOCHS, 40, 200)]
        variants.append(dataclasses.replace(cell.setting, noise_kind=NoiseKind.CLASS_CONDITIONAL, class_map="pair"))
        for setting in variants:
            problems = check_space(self.method_class(), setting, hparams)
            if problems:
                return CheckResult("search-space", False, f"with {setting.epochs} epochs, {setting.noise_kind.value} "
                                   f"noise: {'; '.join(problems[:3])}; fix search_space() or check_hparams()")
        return CheckResult("search-space", True)

    def reference_functions(self) -> CheckResult:
        """``REFERENCE_FUNCTIONS`` of the method's module, if declared, names module-level callables."""
        module = sys.modules[self.method_class().__module__]
        problems = reference_function_problems(module)
        if problems:
            return CheckResult("reference-functions", False, f"{'; '.join(problems[:3])}; REFERENCE_FUNCTIONS must "
                               f"be a tuple of functions defined or imported at the top level of {module.__name__}")
        return CheckResult("reference-functions", True)

    def method_class(self) -> type[Method]:
        """The method class under test."""
        from noisybench.registry import METHODS

        return METHODS.get(self.method)

    def _grid(self) -> Grid:
        return probe_grid(self.method, self.hparams, self.epochs)

    def run_all(self) -> list[CheckResult]:
        """Every check; an exception inside one becomes its failure, with where it was raised."""
        checks: list[tuple[str, Callable[[], CheckResult]]] = [
            ("contract", self.contract), ("determinism", self.determinism), ("resume", self.resume),
            ("history", self.history), ("extensions", self.extensions), ("search-space", self.search_space),
            ("reference-functions", self.reference_functions)]
        results = []
        for name, check in checks:
            try:
                results.append(check())
            except Exception as exc:
                results.append(CheckResult(name, False, f"{type(exc).__name__}: {exc} (at {raised_at(exc)})"))
        return results


def reference_function_problems(module: Any) -> list[str]:
    """What is wrong with ``module.REFERENCE_FUNCTIONS`` (nothing when the module declares none): it must be a tuple
    whose entries are module-level callables of ``module``, as function objects or by name."""
    if not hasattr(module, "REFERENCE_FUNCTIONS"):
        return []
    entries = module.REFERENCE_FUNCTIONS
    if not isinstance(entries, tuple):
        return [f"REFERENCE_FUNCTIONS is a {type(entries).__name__}, not a tuple"]
    problems = []
    for entry in entries:
        name = entry if isinstance(entry, str) else getattr(entry, "__name__", repr(entry))
        function = getattr(module, entry, None) if isinstance(entry, str) else entry
        if not callable(function) or getattr(module, name, None) is not function:
            problems.append(f"{name!r} is not a module-level callable of {module.__name__}")
    return problems


def check_method(name: str, hparams: dict[str, Any] | None = None, epochs: int = EPOCHS) -> list[CheckResult]:
    """Run every conformance check on the registered method ``name``."""
    return Probe(name, hparams, epochs).run_all()


# ---------------------------------------------------------------------- the contract, as documentation text
#: Hooks a method may override, in the order the documentation lists them.
HOOKS = ("default_hparams", "check_hparams", "paper_recipe", "extend_network", "setup", "begin_phase", "train_epoch",
         "training_step", "predict", "predict_heads", "end_epoch", "refined_targets", "selection", "state_dict",
         "load_state_dict")


def _markdown(text: str) -> str:
    """RST roles and double backticks of a docstring as Markdown code spans."""
    text = re.sub(r":(?:meth|class|func|attr|mod):`~?(?:[\w.]+\.)?(\w+)`", r"`\1`", text)
    return " ".join(text.replace("``", "`").split())


def _first_paragraph(obj: Any) -> str:
    return _markdown(inspect.getdoc(obj).split("\n\n")[0]) if inspect.getdoc(obj) else ""


def _hook_order() -> list[str]:
    """The numbered list of the contract module's docstring, one Markdown line per step."""
    doc = inspect.getdoc(method_module) or ""
    steps = re.findall(r"^(\d+)\. (.*?)(?=^\d+\. |\n\n|\Z)", doc, re.S | re.M)
    return [f"{number}. {_markdown(body)}" for number, body in steps]


def _attributes() -> list[str]:
    """``| name | type | meaning |`` rows from ``TrainContext``'s numpydoc Attributes section."""
    doc = inspect.getdoc(TrainContext) or ""
    section = doc.split("----------\n", 1)[1]
    rows = []
    for name, kind, body in re.findall(r"^(\w+) : (.+)\n((?:    .*\n?)+)", section, re.M):
        rows.append(f"| `ctx.{name}` | `{kind}` | {_markdown(body)} |")
    return rows


def contract_reference() -> str:
    """The method-contract section of ``docs/adding-a-method.md``, generated from :mod:`noisybench.method`'s
    docstrings (written by ``python docs/gen.py``)."""
    lines = ["Hook order for a run of E epochs:", "", *_hook_order(), "",
             "What `ctx` (a `TrainContext`) offers, and nothing else:", "",
             "| attribute | type | meaning |", "|---|---|---|", *_attributes()]
    for name, member in inspect.getmembers(TrainContext, inspect.isfunction):
        if not name.startswith("_"):
            signature = str(inspect.signature(member)).replace("self, ", "").replace("(self)", "()")
            signature = signature.split(" -> ")[0].replace("'", "")  # a | inside a code span stays in its cell
            lines.append(f"| `ctx.{name}{signature}` | method | {_first_paragraph(member)} |")
    lines += ["", "Hooks of `Method` (override what you need; `training_step` or `train_epoch` is required):", "",
              "| hook | what it does |", "|---|---|"]
    lines += [f"| `{hook}` | {_first_paragraph(getattr(Method, hook))} |" for hook in HOOKS]
    return "\n".join(lines) + "\n"
