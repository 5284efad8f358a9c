"""Batch augmentations: each image's shifted view equals the window cut from its zero-padded copy."""

from __future__ import annotations

import pytest
import torch

from noisybench.datasets._augment import random_shift_1d, random_shift_2d


@pytest.mark.parametrize("shape", [(6, 8, 8), (5, 3, 7, 9)])
def test_random_shift_2d_cuts_the_drawn_window_of_each_image(shape: tuple[int, ...]) -> None:
    x = torch.rand(shape)
    out = random_shift_2d(x, 2, torch.Generator().manual_seed(7))
    replay = torch.Generator().manual_seed(7)  # the same draws, in the same order
    dy = torch.randint(0, 5, (shape[0],), generator=replay)
    dx = torch.randint(0, 5, (shape[0],), generator=replay)
    imgs = x if x.dim() == 4 else x.unsqueeze(1)
    padded = torch.nn.functional.pad(imgs, (2, 2, 2, 2))
    h, w = shape[-2:]
    want = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(shape[0])])
    assert torch.equal(out, want.reshape(out.shape)) and out.shape == x.shape


def test_random_shift_1d_cuts_the_drawn_window_of_each_sequence() -> None:
    x = torch.rand(4, 10)
    out = random_shift_1d(x, 2, torch.Generator().manual_seed(3))
    offset = torch.randint(0, 5, (4,), generator=torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2, 2))
    assert torch.equal(out, torch.stack([padded[i, offset[i]:offset[i] + 10] for i in range(4)]))
