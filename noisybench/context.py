"""The trainer's side of the method contract: :class:`TrainerContext` implements
:class:`noisybench.method.TrainContext` over one run's data, networks and optimisers (no clean labels).

It owns every backward pass of a run (:meth:`TrainerContext.optimize`: zero, backward, clip, per-step
rate, step, record), every random stream a method draws from (reseeded from (seed, "setup") before
``Method.setup`` and from (seed, epoch) at every epoch start), and the data views (augmentation
policies, preprocessing, evaluation batches).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from noisybench.config import TrainConfig
from noisybench.data import DEFAULT_POLICY, Dataset
from noisybench.data.prepare import PreparedData
from noisybench.data.streaming import BatchStreamer, is_streamed
from noisybench.method import Batch
from noisybench.optim import clip_gradients, set_lr
from noisybench.runtime import Runtime, resolve_runtime
from noisybench.schedules import phase_config, step_lr
from noisybench.seeds import stream

#: Most samples per evaluation batch on a CPU (see :meth:`TrainerContext.logits_on`).
CPU_EVAL_ROWS = 1024


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
        self.lr = train.lr
        self.phase = 0
        self.steps = [0] * len(optimizers)  # optimiser steps in the current phase (Keras-style decay)
        self._recipe = phase_config(train, 0)
        self.generator = torch.Generator()
        self.device_generator = torch.Generator(device=device) if device.type != "cpu" else self.generator
        self.rng = np.random.default_rng(0)
        self._reseed(stream("setup", seed))  # draws in Method.setup are seeded too
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

    def _reseed(self, seq: np.random.SeedSequence) -> int:
        seed = int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
        self.generator.manual_seed(seed)
        if self.device_generator is not self.generator:
            self.device_generator.manual_seed(seed)
        self.rng = np.random.default_rng(seq)
        return seed

    def begin_epoch(self, epoch: int) -> None:
        """Reseed every random stream from (seed, epoch) and reset the loss accumulator."""
        self.epoch = epoch
        seed = self._reseed(stream("epoch", self.seed, epoch))
        seed_global_generators(seed, self.device)
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_count = 0
        subset = self.dataset.epoch_indices(self._y_host, epoch,
                                            np.random.default_rng(stream("epoch-subset", self.seed, epoch)))
        if subset is not None:  # one host-to-device copy per epoch
            self._epoch_index = torch.as_tensor(np.asarray(subset, dtype=np.int64)).to(self.device)
        elif len(self._epoch_index) != self.num_train:
            self._epoch_index = torch.arange(self.num_train, device=self.device)

    def set_phase(self, phase: int, optimizers: list[torch.optim.Optimizer]) -> None:
        """Enter ``phase`` of a phased recipe with its freshly built ``optimizers`` (step counts restart)."""
        self.phase = phase
        self.optimizers[:] = optimizers
        self.steps = [0] * len(optimizers)
        self._recipe = phase_config(self.train, phase)

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

    def _preprocess(self, raw: torch.Tensor) -> torch.Tensor:
        if self.train.normalize:
            return self.dataset.preprocess(raw)
        return self.dataset.preprocess(raw, normalize=False)  # type: ignore[call-arg]

    def augment(self, raw: torch.Tensor, policy: str | None = None) -> torch.Tensor:
        """Network input of a fresh random view of stored-format ``raw``: under the recipe's policy
        (``policy=None``; none when the recipe does not augment) or the named policy of the dataset."""
        choice: bool | str = self.train.augment if policy is None else policy
        if choice is True or choice == DEFAULT_POLICY:
            return self._input(self._preprocess(self.dataset.augment(raw, self.device_generator)))
        if choice is False:
            return self._input(self._preprocess(raw))
        chosen = self.dataset.policy(str(choice))
        x = self._preprocess(chosen.stored(self.dataset, raw, self.device_generator))
        if chosen.network is not None:
            x = chosen.network(x, self.device_generator)
        return self._input(x)

    def prepare(self, raw: torch.Tensor) -> torch.Tensor:
        """Network input of stored-format ``raw`` without augmentation (the test transform)."""
        return self._input(self._preprocess(raw))

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

    def optimize(self, loss: torch.Tensor, which: list[int] | None = None,
                 extra: Sequence[torch.optim.Optimizer] = ()) -> None:
        """Zero the grads, backpropagate ``loss``, step the chosen optimisers (default all) and then the
        method's own ``extra`` ones, and record the loss.

        Between backward and step, each chosen network optimiser's gradients are clipped to the recipe's
        ``grad_clip_norm`` and its rate set for this step under ``lr_decay_per_step`` (only when the
        recipe asks: no cost otherwise). ``extra`` optimisers are never clipped and their rates never set.
        """
        chosen = range(len(self.optimizers)) if which is None else which
        opts = [self.optimizers[i] for i in chosen]
        for opt in (*opts, *extra):
            opt.zero_grad(set_to_none=True)
        loss.backward()
        clip, decay = self._recipe.grad_clip_norm, self._recipe.lr_decay_per_step
        for i, opt in zip(chosen, opts):
            if clip is not None:
                clip_gradients(opt, clip)
            if decay:
                set_lr(opt, step_lr(self.lr, decay, self.steps[i]))
            opt.step()
            self.steps[i] += 1
        for opt in extra:
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

    def outputs_on(self, fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> list[Any]:
        """``fn`` applied to stored-format ``x`` (preprocessed) in evaluation batches: one output per batch.

        On a CPU the batches hold at most :data:`CPU_EVAL_ROWS` samples: larger ones spill the activations out
        of the cache (twice slower on MNIST-1D), and in eval mode each sample's logits do not depend on the batch.
        """
        bs = self.train.eval_batch_size
        if self.device.type == "cpu":
            bs = min(bs, CPU_EVAL_ROWS)
        if not is_streamed(x):
            return [fn(self.prepare(x[i : i + bs])) for i in range(0, len(x), bs)]
        batches = [torch.arange(i, min(i + bs, len(x))) for i in range(0, len(x), bs)]
        return [fn(self.prepare(raw)) for raw in self._streamer.fetch(x, batches)]

    def logits_on(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Apply ``fn`` to stored-format ``x`` (see :meth:`outputs_on`) and concatenate."""
        if len(x) == 0:
            return torch.empty(0, self.num_classes, device=self.device)
        return torch.cat(self.outputs_on(fn, x))

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
