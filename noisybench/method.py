"""The method plugin contract: a small hook API hosted by the shared trainer.

A method (one file in ``methods/``) subclasses :class:`Method` and overrides only the hooks it
needs:

* :meth:`Method.setup` allocates per-sample state (ELR/ALR target buffers) once the trainer
  knows the training set;
* :meth:`Method.training_step` returns the loss of one :class:`~noisybench.trainer.Batch`
  (every batch carries its sample indices);
* :meth:`Method.train_epoch` runs one epoch; the default iterates the shuffled training set and
  calls ``training_step``; methods with their own epoch loop (DivideMix: a pass over the train
  set, a GMM, two networks trained in turn) override it;
* :meth:`Method.predict` turns inputs into logits (two-network methods sum them);
* :meth:`Method.end_epoch` returns per-epoch diagnostics;
* :meth:`Method.state_dict` / :meth:`Method.load_state_dict` put per-sample state into the
  checkpoint.

Hyperparameters are declared with their provenance (:class:`HParam`), so every run records
where each value came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from noisybench.config import Setting
from noisybench.errors import ConfigError, suggest

if TYPE_CHECKING:
    from noisybench.trainer import Batch, TrainContext

SOURCES = ("paper", "paper-default", "suite", "user", "tuned")


@dataclass(frozen=True)
class HParam:
    """A hyperparameter value and where it came from.

    ``source`` is one of ``paper`` (the paper's value for this setting), ``paper-default``
    (the paper's or official code's general default), ``suite`` (our convention, e.g. for
    datasets the paper never ran), ``user`` (set in the grid file) or ``tuned`` (chosen per setting on
    noisy validation among the values of a ``[sweep.<method>]`` table).
    """

    value: Any
    source: str = "suite"


class Method:
    """Base class of noisy-label methods.

    Class attributes
    ----------------
    name : registry name (set by ``@register_method``).
    display_name : name printed in reports and figures (``DivideMix``); the registry name when empty.
    num_networks : how many networks the trainer builds (``ctx.nets``), each with an optimiser.
    hparams : generic defaults; :meth:`default_hparams` refines them per setting.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    num_networks: ClassVar[int] = 1
    hparams: ClassVar[dict[str, Any]] = {}

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
            resolved[key] = HParam(value, "user")
        cls.check_hparams({k: v.value for k, v in resolved.items()})
        values = {k: resolved[k].value for k in sorted(resolved)}
        return values, {k: resolved[k].source for k in sorted(resolved)}

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        """Raise :class:`ConfigError` for out-of-range values (override to add checks)."""

    # ----------------------------------------------------------------- training hooks
    def setup(self, ctx: TrainContext) -> None:
        """Allocate state once the trainer has built the data and networks."""

    def train_epoch(self, ctx: TrainContext, epoch: int) -> dict[str, float]:
        """Run one epoch; return scalar statistics (``train_loss`` at least)."""
        for batch in ctx.train_batches():
            loss = self.training_step(ctx, batch, epoch)
            ctx.optimize(loss)
        return {"train_loss": ctx.mean_loss()}

    def training_step(self, ctx: TrainContext, batch: Batch, epoch: int) -> torch.Tensor:
        """Loss of one batch; the default is cross-entropy on the observed labels."""
        return F.cross_entropy(ctx.nets[0](batch.x), batch.y)

    def predict(self, ctx: TrainContext, x: torch.Tensor) -> torch.Tensor:
        """Logits for ``x`` (networks are already in eval mode, without gradients)."""
        return ctx.nets[0](x)

    def end_epoch(self, ctx: TrainContext, epoch: int) -> dict[str, float]:
        """Per-epoch diagnostics recorded in the run's history."""
        return {}

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
