"""The shared trainer: one loop, one data pipeline, every method.

The trainer prepares the noisy data once per run (:func:`noisybench.data.prepare.prepare_data`),
builds the networks a method asks for, and hosts the method through the contract of
:mod:`noisybench.method` (it implements :class:`~noisybench.method.TrainContext`, and knows no
concrete method). It evaluates validation and test accuracy after every epoch, scores what the
method believes (refined targets, selected samples) against the clean labels, which it never
lends to the method, checkpoints through the checkpoint object it is given (after every epoch, or
at most every ``checkpoint_every`` seconds and whenever ``save_requested()``; a killed run resumes
from the last checkpoint, exactly, since each epoch's random streams derive from (seed, epoch)),
and fails a run whose loss becomes NaN or infinite. The last epoch is never checkpointed: the run's
result follows it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch

from noisybench.archs import create_model
from noisybench.config import RunConfig
from noisybench.context import TrainerContext, seed_global_generators
from noisybench.data.prepare import prepare_data
from noisybench.data.streaming import is_streamed
from noisybench.errors import CheckpointError, NonFiniteLossError
from noisybench.method import Method, create_method
from noisybench.metrics import final_metrics
from noisybench.optim import build_optimizer, set_beta1, set_lr
from noisybench.runtime import accelerate, peak_memory_mb, resolve_runtime
from noisybench.schedules import beta1_at, lr_at, phase_config, phase_of


class CheckpointIO(Protocol):
    """Where the trainer keeps a run's per-epoch state (the store provides one)."""

    def save(self, state: dict[str, Any]) -> None:
        """Replace the saved state."""
        ...

    def load(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The saved state, or None."""
        ...


__all__ = ["CheckpointIO", "Trainer", "TrainerContext", "accuracy", "belief_stats", "build_optimizer",
           "correct_total", "lr_at", "seed_global_generators", "topk_accuracy", "train_fit"]

def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Top-``k`` accuracy in percent (NaN on an empty set)."""
    if len(labels) == 0:
        return float("nan")
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return float((top == labels[:, None]).any(dim=1).float().mean()) * 100.0


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent (NaN on an empty set)."""
    if len(labels) == 0:
        return float("nan")
    return float((logits.argmax(1) == labels).float().mean()) * 100.0


def correct_total(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """Number of top-1 hits and of samples: the exact fraction behind :func:`accuracy`."""
    return int((logits.argmax(1) == labels).sum()), int(len(labels))


#: Largest in-memory training set whose fit to its noisy / clean labels is measured every epoch (one extra
#: evaluation pass; skipped above this size so full-size benchmarks keep their cost).
TRAIN_FIT_MAX = 20_000


def train_fit(ctx: TrainerContext, predict: Callable[[torch.Tensor], torch.Tensor],
              clean: torch.Tensor | None) -> dict[str, float]:
    """Memorisation on the training set: percent of mislabelled samples predicted as their *noisy* label
    (``train_fit_noisy``) and of correctly labelled samples predicted as their label (``train_fit_clean``).

    Empty when clean labels are unknown, the set is streamed, or it has more than :data:`TRAIN_FIT_MAX` samples.
    """
    x = ctx.data.x_train
    if clean is None or is_streamed(x) or len(x) > TRAIN_FIT_MAX:
        return {}
    hit = ctx.logits_on(predict, x).argmax(1) == ctx.y_noisy
    wrong = ctx.y_noisy != clean
    out = {}
    for name, mask in (("train_fit_noisy", wrong), ("train_fit_clean", ~wrong)):
        if bool(mask.any()):
            out[name] = float(hit[mask].float().mean()) * 100.0
    return out


class Trainer:
    """Runs one :class:`RunConfig` to completion, resuming from ``checkpoint`` when it holds a state.

    ``on_epoch(history)`` is called after every epoch, ``on_save(history)`` right after every checkpoint.
    """

    def __init__(self, config: RunConfig, checkpoint: CheckpointIO | None = None,
                 on_epoch: Callable[[list[dict[str, Any]]], None] | None = None,
                 on_save: Callable[[list[dict[str, Any]]], None] | None = None,
                 checkpoint_every: float = 0.0, save_requested: Callable[[], bool] | None = None) -> None:
        self.config = config
        self.train = config.train
        self.checkpoint = checkpoint
        self.on_epoch, self.on_save = on_epoch, on_save
        self.checkpoint_every = checkpoint_every
        self.save_requested = save_requested
        self.runtime = resolve_runtime(self.train)
        self.device = self.runtime.torch_device
        self._clean: torch.Tensor | None = None
        self.resumed_from_epoch = 0  # epochs restored from the checkpoint (set by run)

    def setup(self) -> tuple[TrainerContext, Method]:
        """Prepare data, networks, optimisers and the method (public for benchmarks and tests).

        Every network is built (seeded by the run's seed) before :meth:`Method.extend_network` extends any,
        so an extension leaves the networks' initial weights as they are without it.
        """
        ref = self.config.dataset
        dataset, data = prepare_data(ref.name, dict(ref.params), self.config.noise, self.config.seed,
                                     self.train.val_fraction, self.config.data_root, self.device)
        self._clean, data.y_train_clean = data.y_train_clean, None  # the method never sees clean labels
        method = create_method(self.config.method, **self.config.hparams)
        arch = self.train.arch or dataset.default_arch
        torch.manual_seed(self.config.seed)
        in_shape = tuple(data.x_train.shape[1:])
        nets = [
            create_model(arch, in_shape, dataset.num_classes, **self.train.arch_kwargs).to(self.device)
            for _ in range(method.num_networks)
        ]
        for k, net in enumerate(nets):
            extended = method.extend_network(net, k)
            nets[k] = extended if extended is net else extended.to(self.device)
        for net in nets:
            accelerate(net, self.runtime, len(in_shape) == 3)
        optimizers = [build_optimizer(n, phase_config(self.train, 0)) for n in nets]
        ctx = TrainerContext(data, dataset, nets, optimizers, self.train, self.config.seed, self.device, self.runtime)
        method.setup(ctx)
        return ctx, method

    def run(self) -> dict[str, Any]:
        """Train and evaluate; return ``{"metrics", "history", "noise", "noise_labels", "runtime"}``.

        ``runtime`` is :meth:`noisybench.runtime.Runtime.record`: the device, precision and
        determinism the run resolved to on this machine.
        """
        torch.set_num_threads(self.train.threads)  # the recipe's, whatever process runs it (resumes included)
        with self.runtime.applied():
            ctx, method = self.setup()
            try:
                history = self._resume(ctx, method)
                saved_at = time.monotonic()
                for epoch in range(len(history), self.train.epochs):
                    history.append(self._run_epoch(ctx, method, epoch))
                    if epoch + 1 < self.train.epochs and self._checkpoint_due(saved_at):
                        self._save(ctx, method, history)
                        saved_at = time.monotonic()
                        if self.on_save:
                            self.on_save(history)
                    if self.on_epoch:
                        self.on_epoch(history)
            finally:
                ctx.close()
        return {
            "metrics": final_metrics(history, self.train.mean_last_k),
            "history": history,
            "noise": ctx.data.noise.summary(),
            "noise_labels": ctx.data.noise.labels,
            "runtime": {**self.runtime.record(), "threads": torch.get_num_threads()},
        }

    def _checkpoint_due(self, saved_at: float) -> bool:
        """Save after this epoch? Every epoch with ``checkpoint_every`` 0; otherwise once that many seconds
        have passed since the last save, or at once when ``save_requested()`` (a stop on Ctrl-C)."""
        if self.checkpoint_every <= 0 or time.monotonic() - saved_at >= self.checkpoint_every:
            return True
        return bool(self.save_requested and self.save_requested())

    def _enter_phase(self, ctx: TrainerContext, epoch: int) -> bool:
        """At the first epoch of a later phase: new optimisers for it (True); otherwise nothing (False)."""
        phase = phase_of(self.train, epoch)
        if phase == ctx.phase:
            return False
        recipe = phase_config(self.train, phase)
        ctx.set_phase(phase, [build_optimizer(n, recipe) for n in ctx.nets])
        return True

    def _run_epoch(self, ctx: TrainerContext, method: Method, epoch: int) -> dict[str, Any]:
        """One epoch; when it starts a phase, new optimisers first and ``Method.begin_phase`` once the epoch's
        streams are reseeded (so its draws are the same in a resumed run)."""
        start = time.perf_counter()
        starts_phase = self._enter_phase(ctx, epoch) or (bool(self.train.phases) and epoch == 0)
        lr = lr_at(self.train, epoch)
        beta1 = beta1_at(self.train, epoch)
        for opt in ctx.optimizers:
            set_lr(opt, lr)
            if beta1 is not None:
                set_beta1(opt, beta1)
        ctx.lr = lr
        ctx.begin_epoch(epoch)
        if starts_phase:
            method.begin_phase(ctx, ctx.phase)
        for net in ctx.nets:
            net.train()
        stats = method.train_epoch(ctx, epoch)
        loss = stats.get("train_loss", ctx.mean_loss())
        if not math.isfinite(loss):
            raise NonFiniteLossError(f"training loss became {loss} in epoch {epoch} (lr {lr:g})")
        row: dict[str, Any] = {"epoch": epoch, "lr": lr, **stats}
        row.update(self._evaluate(ctx, method))
        ctx.last_val_acc = row["val_acc"]
        row.update(method.end_epoch(ctx, epoch))
        row.update(belief_stats(method, ctx.y_noisy, self._clean))
        row["epoch_time"] = time.perf_counter() - start
        row["peak_mem_mb"] = peak_memory_mb(self.device)
        return row

    def _evaluate(self, ctx: TrainerContext, method: Method) -> dict[str, float]:
        row: dict[str, float] = {}
        with ctx.eval_mode():
            predict = lambda x: method.predict(ctx, x)  # noqa: E731
            row["val_acc"] = accuracy(ctx.logits_on(predict, ctx.data.x_val), ctx.data.y_val)
            test_logits = ctx.logits_on(predict, ctx.data.x_test)
            row["test_acc"] = accuracy(test_logits, ctx.data.y_test)
            row["test_correct"], row["test_total"] = correct_total(test_logits, ctx.data.y_test)
            if type(method).predict_heads is not Method.predict_heads:
                row.update(head_accuracies(ctx, method, ctx.data.x_test, ctx.data.y_test))
            if ctx.dataset.report_top5:
                row["test_top5"] = topk_accuracy(test_logits, ctx.data.y_test, 5)
            for name, (x, y) in ctx.data.extra_test.items():  # e.g. WebVision's ILSVRC12 val
                logits = ctx.logits_on(predict, x)
                row[f"{name}_acc"] = accuracy(logits, y)
                if ctx.dataset.report_top5:
                    row[f"{name}_top5"] = topk_accuracy(logits, y, 5)
            row.update(train_fit(ctx, predict, self._clean))
        return row

    def _save(self, ctx: TrainerContext, method: Method, history: list[dict[str, Any]]) -> None:
        if self.checkpoint is None:
            return
        state = {
            "run_id": self.config.run_id,
            "history": history,
            "nets": [n.state_dict() for n in ctx.nets],
            "optimizers": [o.state_dict() for o in ctx.optimizers],
            "method": method.state_dict(),
            "phase": ctx.phase,
            "steps": list(ctx.steps),
        }
        self.checkpoint.save(state)

    def _resume(self, ctx: TrainerContext, method: Method) -> list[dict[str, Any]]:
        if self.checkpoint is None:
            return []
        state = self.checkpoint.load(map_location=self.device)
        if not isinstance(state, dict) or state.get("run_id") != self.config.run_id:
            return []
        try:  # a state that does not fit (shapes, counts, missing parts) leaves the run half-restored: start over
            if (len(state["nets"]), len(state["optimizers"])) != (len(ctx.nets), len(ctx.optimizers)):
                raise ValueError(f"{len(state['nets'])} networks and {len(state['optimizers'])} optimisers saved, "
                                 f"{len(ctx.nets)} built")
            for net, s in zip(ctx.nets, state["nets"]):
                net.load_state_dict(s)
            phase = int(state.get("phase", 0))
            if phase != ctx.phase:
                ctx.set_phase(phase, [build_optimizer(n, phase_config(self.train, phase)) for n in ctx.nets])
            for opt, s in zip(ctx.optimizers, state["optimizers"]):
                opt.load_state_dict(s)
            ctx.steps = [int(n) for n in state.get("steps", ctx.steps)]
            method.load_state_dict(state["method"])
            history = list(state["history"])
        except Exception as exc:
            raise CheckpointError(f"{type(exc).__name__}: {exc}") from exc
        self.resumed_from_epoch = len(history)
        return history


def head_accuracies(ctx: TrainerContext, method: Method, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """``test_acc_<head>`` of every extra prediction :meth:`Method.predict_heads` names (in eval mode)."""
    outputs = ctx.outputs_on(lambda batch: method.predict_heads(ctx, batch), x) if len(x) else []
    names = list(outputs[0]) if outputs else []
    return {f"test_acc_{name}": accuracy(torch.cat([o[name] for o in outputs]), y) for name in names}


def belief_stats(method: Method, y_noisy: torch.Tensor, clean: torch.Tensor | None) -> dict[str, float]:
    """Score what ``method`` believes against the clean labels (history diagnostics).

    ``refined_acc``: share of samples whose refined target's argmax is the clean label;
    ``refined_acc_noisy``: the same among mislabelled samples; ``selected_frac``: share judged
    clean; ``select_precision`` / ``select_recall``: of that judgement against the truly clean.
    """
    stats: dict[str, float] = {}
    targets = method.refined_targets()
    if targets is not None and clean is not None:
        hit = targets.argmax(dim=1) == clean
        noisy = y_noisy != clean
        stats["refined_acc"] = float(hit.float().mean())
        stats["refined_acc_noisy"] = float(hit[noisy].float().mean()) if bool(noisy.any()) else float("nan")
    selection = method.selection()
    if selection is not None:
        indices, selected = selection
        stats["selected_frac"] = float(selected.float().mean())
        if clean is not None:
            truly_clean = y_noisy[indices] == clean[indices]
            tp = float((selected & truly_clean).sum())
            stats["select_precision"] = tp / max(1.0, float(selected.sum()))
            stats["select_recall"] = tp / max(1.0, float(truly_clean.sum()))
    return stats
