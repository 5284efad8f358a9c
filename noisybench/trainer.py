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

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from noisybench.archs import create_model
from noisybench.config import RunConfig, TrainConfig
from noisybench.data import Dataset
from noisybench.data.prepare import PreparedData, prepare_data
from noisybench.data.streaming import BatchStreamer, is_streamed
from noisybench.errors import CheckpointError, NonFiniteLossError
from noisybench.method import Batch, Method, create_method
from noisybench.metrics import final_metrics
from noisybench.runtime import Runtime, accelerate, peak_memory_mb, resolve_runtime
from noisybench.seeds import stream

#: Most samples per evaluation batch on a CPU (see :meth:`TrainerContext.logits_on`).
CPU_EVAL_ROWS = 1024


class CheckpointIO(Protocol):
    """Where the trainer keeps a run's per-epoch state (the store provides one)."""

    def save(self, state: dict[str, Any]) -> None:
        """Replace the saved state."""
        ...

    def load(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The saved state, or None."""
        ...


class TrainerContext:
    """The trainer's implementation of :class:`noisybench.method.TrainContext` (no clean labels)."""

    def __init__(
        self, data: PreparedData, dataset: Dataset, nets: list[nn.Module],
        optimizers: list[torch.optim.Optimizer], train: TrainConfig, seed: int, device: torch.device,
        runtime: Runtime | None = None,
    ) -> None:
        self.data, self.dataset, self.nets, self.optimizers = data, dataset, nets, optimizers
        self.train, self.seed, self.device = train, seed, device
        if runtime is None:
            runtime = resolve_runtime(dataclasses.replace(train, device=str(device)))
        self.runtime = runtime
        self.epoch = 0
        self.last_val_acc = float("nan")
        self.epochs = train.epochs
        self.batch_size = train.batch_size
        self.num_classes = data.num_classes
        self.num_train = len(data.y_train)
        self.generator = torch.Generator()
        self.rng = np.random.default_rng(0)
        self.device_generator = torch.Generator(device=device) if device.type != "cpu" else self.generator
        self._loss_sum = torch.zeros((), device=device)
        self._loss_count = 0
        self._channels_last = self.runtime.channels_last
        self._epoch_index = torch.arange(self.num_train, device=device)
        self._y_host = data.y_train.cpu().numpy()
        self._streamer = BatchStreamer(device, train.num_workers)

    @property
    def y_noisy(self) -> torch.Tensor:
        """Observed (noisy) training labels, aligned with batch indices."""
        return self.data.y_train

    def begin_epoch(self, epoch: int) -> None:
        """Reseed every random stream from (seed, epoch) and reset the loss accumulator."""
        self.epoch = epoch
        seq = stream("epoch", self.seed, epoch)
        seed = int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
        self.generator.manual_seed(seed)
        if self.device_generator is not self.generator:
            self.device_generator.manual_seed(seed)
        self.rng = np.random.default_rng(seq)
        seed_global_generators(seed, self.device)
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_count = 0
        subset = self.dataset.epoch_indices(self._y_host, epoch,
                                            np.random.default_rng(stream("epoch-subset", self.seed, epoch)))
        if subset is not None:  # one host-to-device copy per epoch
            self._epoch_index = torch.as_tensor(np.asarray(subset, dtype=np.int64)).to(self.device)
        elif len(self._epoch_index) != self.num_train:
            self._epoch_index = torch.arange(self.num_train, device=self.device)

    @property
    def epoch_indices(self) -> torch.Tensor:
        """This epoch's training indices (on the device): all of them, or the dataset's per-epoch subset."""
        return self._epoch_index

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast at the run's precision (a no-op in fp32).

        The networks' forward passes already run under it (see :func:`noisybench.runtime.accelerate`);
        methods may use it for other heavy tensor work.
        """
        dtype = self.runtime.autocast_dtype
        if dtype is not None:
            return torch.autocast(self.device.type, dtype=dtype)
        return contextlib.nullcontext()

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if self._channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def augment(self, raw: torch.Tensor) -> torch.Tensor:
        """Network input of a fresh random view of stored-format ``raw`` (no augmentation
        when the profile disables it)."""
        if self.train.augment:
            raw = self.dataset.augment(raw, self.device_generator)
        return self._input(self.dataset.preprocess(raw))

    def prepare(self, raw: torch.Tensor) -> torch.Tensor:
        """Network input of stored-format ``raw`` without augmentation (the test transform)."""
        return self._input(self.dataset.preprocess(raw))

    def train_batches(
        self, batch_size: int | None = None, indices: torch.Tensor | None = None,
        shuffle: bool = True, augment: bool = True, drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Yield batches over ``indices`` (default: the epoch's training indices) in a seeded order.

        The default is the whole training set, or the subset the dataset draws for this epoch
        (:meth:`noisybench.data.Dataset.epoch_indices`, e.g. Clothing1M's class-balanced draw).
        Streamed datasets are decoded by DataLoader workers; batches look the same either way.
        The indices are shuffled on the device with :attr:`device_generator`, so a pass copies nothing
        between host and device per step (streamed data: one index copy per pass). Without
        ``augment``, ``Batch.x`` is built only if it is read.
        """
        bs = batch_size or self.batch_size
        idx = self.epoch_indices if indices is None else indices
        if idx.device != self.device:
            idx = idx.to(self.device)
        if shuffle:
            idx = idx[torch.randperm(len(idx), generator=self.device_generator, device=self.device)]
        stop = len(idx) - (len(idx) % bs if drop_last else 0)
        batches = [idx[start : start + bs] for start in range(0, stop, bs)]
        x = self.data.x_train
        raws = self._streamer.fetch(x, batches) if is_streamed(x) else (x[b] for b in batches)
        for b, raw in zip(batches, raws):
            view = self.augment(raw) if augment else functools.partial(self.prepare, raw)
            yield Batch(view, raw, self.data.y_train[b], b)

    def close(self) -> None:
        """Release the run's resources (persistent DataLoader workers)."""
        self._streamer.close()

    def optimize(self, loss: torch.Tensor, which: list[int] | None = None) -> None:
        """Zero the grads, backpropagate ``loss`` and step the chosen optimisers (default all)."""
        opts = self.optimizers if which is None else [self.optimizers[i] for i in which]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in opts:
            opt.step()
        self.record_loss(loss)

    def record_loss(self, loss: torch.Tensor) -> None:
        """Add ``loss`` to the epoch's mean (no device sync)."""
        self._loss_sum += loss.detach()
        self._loss_count += 1

    def mean_loss(self) -> float:
        """Mean recorded loss of the epoch so far (NaN if none)."""
        return float(self._loss_sum) / self._loss_count if self._loss_count else float("nan")

    @contextlib.contextmanager
    def eval_mode(self, nets: list[nn.Module] | None = None) -> Iterator[None]:
        """Put ``nets`` (default all) in eval mode without gradients, then restore them."""
        nets = self.nets if nets is None else nets
        modes = [n.training for n in nets]
        for n in nets:
            n.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            for n, mode in zip(nets, modes):
                n.train(mode)

    def logits_on(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Apply ``fn`` to stored-format ``x`` (preprocessed, in evaluation batches); concatenate.

        On a CPU the batches hold at most :data:`CPU_EVAL_ROWS` samples: larger ones spill the activations out
        of the cache (twice slower on MNIST-1D), and in eval mode each sample's logits do not depend on the batch.
        """
        bs = self.train.eval_batch_size
        if self.device.type == "cpu":
            bs = min(bs, CPU_EVAL_ROWS)
        if len(x) == 0:
            return torch.empty(0, self.num_classes, device=self.device)
        if not is_streamed(x):
            return torch.cat([fn(self.prepare(x[i : i + bs])) for i in range(0, len(x), bs)])
        batches = [torch.arange(i, min(i + bs, len(x))) for i in range(0, len(x), bs)]
        return torch.cat([fn(self.prepare(raw)) for raw in self._streamer.fetch(x, batches)])

    def predict_train(self, net: nn.Module, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of ``net`` on the un-augmented training set (or its rows ``indices``), in eval mode."""
        x = self.data.x_train if indices is None else self.data.x_train[indices]
        with self.eval_mode([net]):
            return self.logits_on(net, x)


def seed_global_generators(seed: int, device: torch.device) -> None:
    """What ``torch.manual_seed(seed)`` does for a run on ``device``: the CPU generator, and on CUDA every
    device's. ``torch.manual_seed`` also queues seeds for accelerators not in use, recording a stack trace for
    each (0.4 ms, a percent of a small epoch)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    elif device.type == "mps":
        torch.mps.manual_seed(seed)


def lr_at(train: TrainConfig, epoch: int) -> float:
    """Learning rate of ``epoch`` under the profile's schedule (no scheduler state to save)."""
    if train.schedule == "cosine":
        return train.lr * 0.5 * (1 + math.cos(math.pi * epoch / train.epochs))
    if train.schedule == "step":
        return train.lr * train.gamma ** sum(epoch >= m for m in train.milestones)
    return train.lr


def build_optimizer(net: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """The profile's optimiser for ``net``."""
    if train.optimizer == "adam":
        return torch.optim.Adam(net.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(
        net.parameters(), lr=train.lr, momentum=train.momentum,
        weight_decay=train.weight_decay, nesterov=train.nesterov,
    )


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
        """Prepare data, networks, optimisers and the method (public for benchmarks and tests)."""
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
        for net in nets:
            accelerate(net, self.runtime, len(in_shape) == 3)
        optimizers = [build_optimizer(n, self.train) for n in nets]
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

    def _run_epoch(self, ctx: TrainerContext, method: Method, epoch: int) -> dict[str, Any]:
        start = time.perf_counter()
        lr = lr_at(self.train, epoch)
        for opt in ctx.optimizers:
            for group in opt.param_groups:
                group["lr"] = lr
        ctx.begin_epoch(epoch)
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
            for opt, s in zip(ctx.optimizers, state["optimizers"]):
                opt.load_state_dict(s)
            method.load_state_dict(state["method"])
            history = list(state["history"])
        except Exception as exc:
            raise CheckpointError(f"{type(exc).__name__}: {exc}") from exc
        self.resumed_from_epoch = len(history)
        return history


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
