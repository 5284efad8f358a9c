"""The method plugin contract: everything a method sees, in one module.

A method (one file in ``methods/``) subclasses :class:`Method` and overrides the hooks it needs.
The trainer calls them in this order for a run of E epochs:

1. ``Method(**hparams)``, with the values :meth:`Method.resolve_hparams` chose for the run's
   :class:`~noisybench.facts.Setting`;
2. :meth:`Method.extend_network` on every network once all are built (seeded), before the trainer
   builds their optimisers: extra heads added here train under the recipe;
3. :meth:`Method.setup` once the trainer has built the data, networks and optimisers: allocate
   per-sample state here (ELR/ALR target buffers); ``ctx.generator`` and ``ctx.rng`` are already
   seeded from (seed, "setup");
4. on a resume, :meth:`Method.load_state_dict` with what :meth:`Method.state_dict` returned at the
   last checkpoint (the end of an epoch);
5. for every epoch e: under a recipe with ``phases``, at the first epoch of each phase,
   :meth:`Method.begin_phase` with the phase's new optimisers in place and the epoch's random streams
   seeded; then :meth:`Method.train_epoch` (the default iterates ``ctx.train_batches()`` and calls
   :meth:`Method.training_step` on every :class:`Batch`), then evaluation through :meth:`Method.predict`
   (and :meth:`Method.predict_heads`), then :meth:`Method.end_epoch`, then the trainer reads
   :meth:`Method.refined_targets` and :meth:`Method.selection` to score them against the clean
   labels (methods never see clean labels), then :meth:`Method.state_dict` when a checkpoint is due
   (after every epoch but the last, at most every few seconds; see :class:`noisybench.trainer.Trainer`).

Methods talk to the trainer only through :class:`TrainContext`. Hyperparameters are declared
with their provenance (:class:`HParam`), so every run records where each value came from;
epoch counts published for another schedule go through :func:`scale_epochs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from noisybench.errors import ConfigError, suggest
from noisybench.facts import NoiseKind, Setting
from noisybench.search_space import SearchSpace
from noisybench.validate import check_like_defaults

SOURCES = ("paper", "paper-default", "suite", "user", "tuned")


class Batch:
    """One training batch. ``index`` addresses per-sample state (positions 0..N-1).

    ``x`` is the network input of the training view (augmented when the recipe augments, then
    preprocessed); ``raw`` is the stored form, from which ``ctx.augment(raw)`` makes further
    random views. ``y`` holds the observed (noisy) labels. ``x`` may be given as a function that
    builds it, called when ``x`` is first read (batches whose input a method never reads cost nothing).
    """

    __slots__ = ("_x", "raw", "y", "index")

    def __init__(self, x: torch.Tensor | Callable[[], torch.Tensor], raw: torch.Tensor, y: torch.Tensor,
                 index: torch.Tensor) -> None:
        self._x, self.raw, self.y, self.index = x, raw, y, index

    @property
    def x(self) -> torch.Tensor:
        """The network input (built on first access when given as a function)."""
        if not isinstance(self._x, torch.Tensor):
            self._x = self._x()
        return self._x

    def __repr__(self) -> str:
        return f"Batch(size={len(self.index)}, raw={tuple(self.raw.shape)}, device={self.index.device})"


class TrainContext(Protocol):
    """What the trainer lends a method: exactly these attributes and methods, nothing else.

    Attributes
    ----------
    nets : list[nn.Module]
        The networks (``num_networks`` of them, as :meth:`Method.extend_network` returned them), each with
        its own optimiser; in train mode during ``train_epoch``. Every registered network exposes
        ``layer_groups()`` (its parameters in groups from input to output; the last is the classifier)
        and ``forward(x, features=True)``, which returns ``(logits, penultimate features)``.
    device : torch.device
        Where networks, labels and per-sample state live.
    epochs : int
        E, the run's number of epochs (all phases together).
    lr : float
        This epoch's learning rate under the recipe's schedule (before any per-step decay).
    phase : int
        The phase of a phased recipe (``phases``) this epoch belongs to; 0 without phases.
    num_train : int
        N, the number of training samples (batch indices run over 0..N-1); read it in ``setup``
        to size per-sample state.
    num_classes : int
        C, the number of classes.
    batch_size : int
        The recipe's batch size.
    y_noisy : torch.Tensor
        The observed training labels (N,), aligned with batch indices; never the clean labels.
    epoch_indices : torch.Tensor
        This epoch's training indices on ``device`` (all of them, or the dataset's per-epoch draw).
    generator : torch.Generator
        A torch generator (on the CPU) seeded from (seed, "setup") before ``setup`` and reseeded from
        (seed, epoch) at every epoch start.
    device_generator : torch.Generator
        A torch generator on ``device``, seeded likewise (the same object as ``generator`` on
        the CPU); draws on the device need no host-device copy.
    rng : np.random.Generator
        A numpy generator seeded from (seed, "setup") before ``setup`` and from (seed, epoch) at every
        epoch start.
    last_val_acc : float
        Noisy-validation accuracy of the epoch just evaluated (read it in ``end_epoch``).
    """

    nets: list[nn.Module]
    device: torch.device
    epochs: int
    lr: float
    phase: int
    num_train: int
    num_classes: int
    batch_size: int
    y_noisy: torch.Tensor
    epoch_indices: torch.Tensor
    generator: torch.Generator
    device_generator: torch.Generator
    rng: np.random.Generator
    last_val_acc: float

    def train_batches(
        self, batch_size: int | None = None, indices: torch.Tensor | None = None,
        shuffle: bool = True, augment: bool = True, drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Batches over ``indices`` (default: ``epoch_indices``) in a seeded order."""
        ...

    def augment(self, raw: torch.Tensor, policy: str | None = None) -> torch.Tensor:
        """Network input of a fresh random view of stored-format ``raw``, under the recipe's augmentation
        (``policy=None``) or the dataset's named policy (``"weak"``, ``"strong"``, ``"autoaugment-cutout16"``, ...).
        """
        ...

    def optimize(self, loss: torch.Tensor, which: list[int] | None = None,
                 extra: Sequence[torch.optim.Optimizer] = ()) -> None:
        """Zero the grads, backpropagate ``loss``, step the chosen network optimisers (default all; gradients clipped
        to the recipe's ``grad_clip_norm``), then the method's own ``extra`` optimisers (never clipped, rates never
        set: keep their state in ``state_dict``), and record the loss.
        """
        ...

    def mean_loss(self) -> float:
        """Mean recorded loss of the epoch so far."""
        ...

    def predict_train(self, net: nn.Module, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of ``net`` on the un-augmented training set (or its rows ``indices``), in eval mode."""
        ...


#: The :class:`~noisybench.config.TrainConfig` fields a recipe decides (what ``noisybench plan`` shows).
RECIPE_KEYS = ("arch", "arch_kwargs", "epochs", "optimizer", "lr", "momentum", "nesterov", "weight_decay",
               "schedule", "milestones", "gamma", "batch_size", "augment", "val_fraction", "eta_min", "restart_every",
               "adam_beta1_tail", "lr_decay_per_step", "grad_clip_norm", "weight_decay_by_module", "normalize",
               "phases")


def recipe(source: str = "paper", ref: str = "", **values: Any) -> dict[str, HParam]:
    """A published training recipe: ``TrainConfig`` field values that share one provenance ``source``
    and, optionally, one citation ``ref`` (where exactly the values come from: a paper section, an
    official config file), which ``noisybench plan`` shows beside each value.

    Merge dicts to give single values another tag: ``{**recipe(lr=0.01), **recipe("paper-default", ...)}``.
    """
    unknown = sorted(set(values) - set(RECIPE_KEYS))
    if unknown:
        raise ValueError(f"recipe: unknown key(s) {', '.join(unknown)}; recipe keys: {', '.join(RECIPE_KEYS)}")
    return {key: HParam(value, source, ref) for key, value in values.items()}


@dataclass(frozen=True)
class RecipeQuery:
    """What :meth:`Method.paper_recipe` may choose a published recipe by: the dataset's family and the noise's
    facts (the attribute names are :class:`~noisybench.facts.Setting`'s, so the same helpers read both).
    Not the epochs: the run's length comes from the recipe."""

    family: str
    base_family: str = ""
    noise_kind: NoiseKind = NoiseKind.SYMMETRIC
    class_map: str = ""
    noise_rate: float | None = None
    noise_arg: str | None = None

    @property
    def images(self) -> str:
        """The family whose images the dataset has."""
        return self.base_family or self.family


def epoch_hparam(value: int, setting: Setting, source: str, reference_epochs: int | None = None) -> HParam:
    """An epoch count (warm-up, ramp, prune start) published for the method's own schedule.

    On that schedule (``setting.paper_schedule``: protocol ``paper``, the paper's recipe, epochs
    not overridden) the value is kept with ``source``. Otherwise it is scaled to the run's length
    (:func:`scale_epochs` against ``reference_epochs``, default ``setting.paper_epochs``) and tagged
    ``suite``, even where the lengths happen to agree: the schedule is not the paper's.
    """
    if setting.paper_schedule:
        return HParam(value, source)
    reference = reference_epochs or setting.paper_epochs or setting.epochs
    return HParam(scale_epochs(value, reference, setting.epochs, "suite").value, "suite")


def scale_epochs(value: int, reference_epochs: int, epochs: int, source: str) -> HParam:
    """An epoch count (warm-up, E_w, ramp, prune start) published for a ``reference_epochs`` schedule.

    Unchanged, with ``source``, when the run is as long as that schedule; otherwise scaled in
    proportion, ``max(1, round(value * epochs / reference_epochs))``, and tagged ``suite``.
    """
    if epochs == reference_epochs:
        return HParam(value, source)
    return HParam(max(1, int(round(value * epochs / reference_epochs))), "suite")


@dataclass(frozen=True)
class HParam:
    """A hyperparameter value and where it came from.

    ``source`` is one of ``paper`` (the paper's value for this setting), ``paper-default``
    (the paper's or official code's general default), ``suite`` (our convention, e.g. for
    datasets the paper never ran), ``user`` (set in the grid file) or ``tuned`` (a trial of a grid's ``[tune]``
    search, chosen per setting on noisy validation over seeds that are not scored). ``ref`` optionally cites the
    exact origin (``"paper text, Sec. 4"``, ``"official config_cifar10_asym.json"``).
    """

    value: Any
    source: str = "suite"
    ref: str = ""


class Method:
    """Base class of noisy-label methods.

    Class attributes
    ----------------
    name : registry name (set by ``@register_method``).
    display_name : name printed in reports and figures (``DivideMix``); the registry name when empty.
    num_networks : how many networks the trainer builds (``ctx.nets``), each with an optimiser.
    relative_cost : rough compute of a run relative to CE's on the same data and schedule; a scheduling
        hint only (the local executor starts the costliest runs first, so a grid does not end on one long run).
    hparams : generic defaults; :meth:`default_hparams` refines them per setting.
    paper_recipes : the method's own published training recipe per dataset family
        (:mod:`noisybench.facts`), each a dict of :func:`recipe` values with provenance. Runs under
        ``protocol = "paper"`` use it (through :meth:`paper_recipe`, which may also choose by the noise);
        a family without one falls back to the dataset's shared recipe.
    id_neutral_hparams : hyperparameters added after runs were stored, each with the value that trains
        exactly as the method did before it existed; at that value a hyperparameter stays out of the run
        id, so adding one changes no existing run id.
    deviations : where the suite departs, on purpose, from the reference code it follows: each entry one
        statement of what the reference does, what the suite does, why, and the measured effect.
        ``noisybench plan`` prints them under every configuration of the method.
    reproduced : the reference code's surprising behaviours the suite reproduces on purpose (a fidelity trap
        decided in favour of the reference), each one statement with its source; ``plan`` prints them beside
        the deviations.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    num_networks: ClassVar[int] = 1
    relative_cost: ClassVar[float] = 1.0
    hparams: ClassVar[dict[str, Any]] = {}
    paper_recipes: ClassVar[dict[str, dict[str, HParam]]] = {}
    deviations: ClassVar[tuple[str, ...]] = ()
    reproduced: ClassVar[tuple[str, ...]] = ()
    id_neutral_hparams: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.training_step is Method.training_step and cls.train_epoch is Method.train_epoch:
            raise TypeError(f"method {cls.__qualname__} must override training_step (one batch's loss) "
                            "or train_epoch (a whole epoch)")

    def __init__(self, **hparams: Any) -> None:
        self.hp: dict[str, Any] = {**self.hparams, **hparams}

    # ----------------------------------------------------------------- hyperparameters
    @classmethod
    def default_hparams(cls, setting: Setting) -> dict[str, HParam]:
        """Hyperparameters for ``setting`` with provenance (default: ``hparams``, ``suite``)."""
        return {k: HParam(v, "suite") for k, v in cls.hparams.items()}

    @classmethod
    def resolve_hparams(
        cls, setting: Setting, overrides: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Merge per-setting defaults with grid overrides; unknown names raise."""
        resolved = dict(cls.default_hparams(setting))
        for key, value in (overrides or {}).items():
            if key not in resolved:
                raise ConfigError(
                    f"[methods.{cls.name}]: unknown hyperparameter {key!r}.{suggest(key, resolved)} "
                    f"Known: {', '.join(sorted(resolved)) or 'none'}"
                )
            check_like_defaults(key, value, [cls.hparams.get(key), resolved[key].value], f"[methods.{cls.name}]")
            resolved[key] = HParam(value, "user")
        try:
            cls.check_hparams({k: v.value for k, v in resolved.items()})
        except (TypeError, ValueError) as exc:  # a plugin's check tripped over a value of another type
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"[methods.{cls.name}]: a value has the wrong type for check_hparams "
                              f"({type(exc).__name__}: {exc}); overrides: {dict(overrides or {})!r}") from None
        values = {k: resolved[k].value for k in sorted(resolved)}
        return values, {k: resolved[k].source for k in sorted(resolved)}

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        """Raise :class:`ConfigError` for out-of-range values (override to add checks)."""

    @classmethod
    def paper_recipe(cls, query: RecipeQuery) -> dict[str, HParam] | None:
        """The published recipe for a dataset family and noise (default: ``paper_recipes[query.family]``); override to
        choose by the noise's kind, class map or rate (e.g. a paper's recipe for symmetric noise and its official
        config's for asymmetric).
        """
        return cls.paper_recipes.get(query.family) if query.family else None

    @classmethod
    def search_space(cls, setting: Setting, hparams: Mapping[str, Any] | None = None) -> SearchSpace:
        """Hyperparameters tuned under a grid's ``[tune]`` budget, each a dimension of
        :mod:`noisybench.search_space` with its source (default: none; CE has none).

        ``hparams`` are the values the run would have untuned (the defaults for ``setting`` with the grid's
        ``[methods.<name>]`` overrides; None: the defaults), so a space may follow a variant switch (GCE tunes
        ``k`` only when ``truncated``). Override it and explain each range in the docstring: the paper's
        sensitivity study where there is one (``paper``), else our own choice (``suite``). Every point must
        pass :meth:`check_hparams` (``noisybench check-method`` checks the corners and the trial points).
        """
        return {}

    @classmethod
    def deviations_for(cls, hparams: dict[str, Any]) -> tuple[str, ...]:
        """The :attr:`deviations` that apply to a run with ``hparams`` (default: all of them)."""
        return cls.deviations

    # ----------------------------------------------------------------- training hooks
    def extend_network(self, net: nn.Module, k: int) -> nn.Module:
        """Network ``k`` as the method trains it (default: unchanged); return a module that wraps ``net`` to add heads
        (a head like the classifier: ``copy.deepcopy(net.layer_groups()[-1])``, re-initialised, on the features of
        ``net(x, features=True)``): its parameters join the recipe's optimiser. Its ``forward(x)`` must still return
        the main logits (evaluation calls it); give extra outputs through ``forward`` keywords, which mixed precision
        and compilation wrap, never through another method.
        """
        return net

    def setup(self, ctx: TrainContext) -> None:
        """Allocate state once the trainer has built the data and networks."""

    def begin_phase(self, ctx: TrainContext, phase: int) -> None:
        """Start ``phase`` of a phased recipe (its optimisers are already new): e.g. reload the best noisy-validation
        state of the previous phase. Called only under recipes with ``phases``; keep what it changes in
        ``state_dict``.
        """

    def train_epoch(self, ctx: TrainContext, epoch: int) -> dict[str, float]:
        """Run one epoch; return scalar statistics (``train_loss`` at least)."""
        for batch in ctx.train_batches():
            loss = self.training_step(ctx, batch, epoch)
            ctx.optimize(loss)
        return {"train_loss": ctx.mean_loss()}

    def training_step(self, ctx: TrainContext, batch: Batch, epoch: int) -> torch.Tensor:
        """Loss of one batch (required unless :meth:`train_epoch` is overridden)."""
        raise NotImplementedError(f"{type(self).__name__} defines neither training_step nor train_epoch")

    def predict(self, ctx: TrainContext, x: torch.Tensor) -> torch.Tensor:
        """Logits for ``x`` (networks are already in eval mode, without gradients)."""
        return ctx.nets[0](x)

    def predict_heads(self, ctx: TrainContext, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra named predictions for ``x`` (second network, pseudo head), each recorded per epoch as
        ``test_acc_<name>``; the headline metrics stay :meth:`predict`'s. Default: none (and no cost).
        """
        return {}

    def end_epoch(self, ctx: TrainContext, epoch: int) -> dict[str, float]:
        """Per-epoch statistics recorded in the run's history (after evaluation)."""
        return {}

    # ----------------------------------------------------------------- what the method believes
    def refined_targets(self) -> torch.Tensor | None:
        """Soft targets (N, C) the method has refined, if any; the trainer scores their argmax
        against the clean labels (``refined_acc``, ``refined_acc_noisy``)."""
        return None

    def selection(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(indices, selected)``: the samples the method judged and which it believes clean, if
        it selects; indices may repeat (one judgement per network). The trainer reports
        ``selected_frac`` and, where clean labels are known, ``select_precision`` / ``select_recall``."""
        return None

    # ----------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Per-sample and other method state (tensors and plain Python values only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def create_method(name: str, **hparams: Any) -> Method:
    """Instantiate the registered method ``name`` with ``hparams``."""
    from noisybench.registry import METHODS

    return METHODS.get(name)(**hparams)
