"""Streaming large image datasets (Clothing1M, WebVision) through DataLoader workers.

A dataset plugin whose images do not fit in memory returns an :class:`ImageList` in place of a
tensor in :class:`noisybench.data.DataSplits`. An ``ImageList`` behaves like the in-memory
tensor where the trainer needs it: ``len``, ``shape``, and indexing with an index array gives a
sub-list (so the noisy validation split and per-sample indices work unchanged). The trainer
then fetches batches with :func:`iter_batches`, which decodes in DataLoader worker processes
into the same stored format as the in-memory path (uint8 (B, 3, S, S)); augmentation and
normalisation stay on the device, so methods see identical batches either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from noisybench.errors import DataError


class ImageList(torch.utils.data.Dataset):
    """Image files decoded on access to uint8 (3, size, size).

    Decoding: RGB; the shorter side resized to ``size`` (bilinear), then the central
    ``size`` x ``size`` square. Random crops to the network size happen later, on the device.

    Parameters
    ----------
    paths
        Image file paths, one per sample.
    size
        Side of the stored square image.
    """

    def __init__(self, paths: Sequence[str | Path] | np.ndarray, size: int) -> None:
        self.paths = np.asarray([str(p) for p in paths], dtype=object)
        self.size = int(size)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, 3, size, size), like the tensor it stands for."""
        return (len(self.paths), 3, self.size, self.size)

    def __getitem__(self, index: int | np.ndarray | torch.Tensor | slice) -> torch.Tensor | ImageList:
        if isinstance(index, (int, np.integer)):
            return self.decode(int(index))
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return ImageList(self.paths[index], self.size)

    def decode(self, i: int) -> torch.Tensor:
        """Read image ``i``; an unreadable file raises :class:`DataError` naming it."""
        from PIL import Image

        path = self.paths[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                scale = self.size / min(w, h)
                img = img.resize((max(self.size, round(w * scale)), max(self.size, round(h * scale))),
                                 Image.BILINEAR)
                w, h = img.size
                left, top = (w - self.size) // 2, (h - self.size) // 2
                img = img.crop((left, top, left + self.size, top + self.size))
                arr = np.asarray(img, dtype=np.uint8)
        except OSError as exc:
            raise DataError(f"cannot read image {path}: {exc}") from None
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def is_streamed(x: object) -> bool:
    """Whether ``x`` is a streamed image list rather than an in-memory tensor."""
    return isinstance(x, ImageList)


def iter_batches(
    x: torch.Tensor | ImageList, batches: Sequence[torch.Tensor], device: torch.device, num_workers: int = 0,
) -> Iterator[torch.Tensor]:
    """Yield ``x[b]`` on ``device`` for every index tensor ``b`` of ``batches``, in order.

    In-memory tensors are indexed directly (on their device; indices already there are not
    copied); an :class:`ImageList` is decoded by a one-off DataLoader with ``num_workers`` worker
    processes (0: in this process) and pinned memory on CUDA. A trainer keeps its workers across
    passes with a :class:`BatchStreamer` instead.
    """
    if not is_streamed(x):
        for b in batches:
            yield x[b if b.device == x.device else b.to(x.device)]  # type: ignore[index]
        return
    streamer = BatchStreamer(device, num_workers, persistent=False)
    yield from streamer.fetch(x, batches)


def _host_lists(batches: Sequence[torch.Tensor]) -> list[list[int]]:
    """The index batches as Python lists, with one device-to-host copy for all of them."""
    if not batches:
        return []
    flat = torch.cat(list(batches)).cpu().tolist()
    out, start = [], 0
    for b in batches:
        out.append(flat[start : start + len(b)])
        start += len(b)
    return out


class _Batches:
    """A batch sampler whose batches are replaced before every pass (so a loader, and its workers, persist)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class BatchStreamer:
    """Decodes batches of :class:`ImageList` rows through DataLoaders whose workers persist across passes.

    One loader per image list and concurrent pass (DivideMix reads two streams of the training
    list at once); a pass that is abandoned (a generator closed early) returns its loader to the
    pool. ``persistent=False`` builds a fresh loader (and fresh workers) for every pass.
    """

    def __init__(self, device: torch.device, num_workers: int = 0, persistent: bool = True) -> None:
        self.device, self.num_workers = device, num_workers
        self.persistent = persistent and num_workers > 0
        self._idle: dict[int, list[tuple[ImageList, _Batches, torch.utils.data.DataLoader]]] = {}

    def _loader(self, x: ImageList) -> tuple[ImageList, _Batches, torch.utils.data.DataLoader]:
        pool = self._idle.get(id(x), [])
        if pool:
            return pool.pop()
        sampler = _Batches()
        loader = torch.utils.data.DataLoader(
            x, batch_sampler=sampler, num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
            persistent_workers=self.persistent, prefetch_factor=4 if self.num_workers else None,
        )
        return x, sampler, loader

    def fetch(self, x: ImageList, batches: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Yield the decoded rows ``x[b]`` on the device for every index tensor ``b`` of ``batches``."""
        entry = self._loader(x)
        entry[1].batches = _host_lists(batches)
        try:
            for batch in entry[2]:
                yield batch.to(self.device, non_blocking=True)
        finally:
            if self.persistent:
                self._idle.setdefault(id(x), []).append(entry)

    def close(self) -> None:
        """Stop every persistent worker."""
        for pool in self._idle.values():
            for _, _, loader in pool:
                iterator = getattr(loader, "_iterator", None)
                if iterator is not None:
                    iterator._shutdown_workers()
        self._idle.clear()
