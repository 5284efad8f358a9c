"""Named augmentation policies: seeded and reproducible, Pillow's and Keras' arithmetic, reachable from recipes
and methods (datasets/_policies.py, datasets/_image_ops.py, TrainerContext.augment)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisybench.config import Grid
from noisybench.data import create_dataset
from noisybench.datasets import _image_ops as ops
from noisybench.datasets._policies import CUTOUT_GREY, autoaugment_value, cutout_grey, cutout_zero
from noisybench.errors import ConfigError
from noisybench.plan import expand_grid
from noisybench.trainer import Trainer

PIL = pytest.importorskip("PIL")
from PIL import Image, ImageEnhance, ImageOps  # noqa: E402


def _batches() -> dict[str, tuple[object, torch.Tensor]]:
    cifar = create_dataset("cifar-synthetic", n_train=64, n_test=10)
    digits = create_dataset("digits")
    mnist = create_dataset("mnist1d", num_samples=500)
    return {"cifar": (cifar, cifar.load().x_train[:32]), "digits": (digits, digits.load().x_train[:32]),
            "mnist1d": (mnist, mnist.load().x_train[:32])}


def _view(dataset, policy: str, x: torch.Tensor, seed: int) -> torch.Tensor:
    chosen = dataset.policy(policy)
    g = torch.Generator().manual_seed(seed)
    out = dataset.preprocess(chosen.stored(dataset, x, g))
    return chosen.network(out, g) if chosen.network is not None else out


def test_every_policy_is_reproducible_from_the_generator_and_varies_with_its_seed() -> None:
    checked = []
    for name, (dataset, x) in _batches().items():
        for policy in dataset.policy_names():
            first, again, other = (_view(dataset, policy, x, s) for s in (7, 7, 8))
            assert torch.equal(first, again), (name, policy)
            assert not torch.equal(first, other), (name, policy)
            assert first.shape == dataset.preprocess(x).shape and first.dtype == torch.float32
            checked.append(policy)
    assert set(checked) == {"weak", "weak+rot20", "keras-shift", "keras-shift+rot20", "autoaugment-cutout16",
                            "autoaugment-cutout16-c10stats", "randaugment-3-5", "strong"}


def test_the_cifar10_stats_view_is_the_same_view_normalised_with_cifar10s_statistics() -> None:
    """SOP+'s official CIFAR-100 strong view: the same random view, normalised with CIFAR-10's mean and std."""
    from noisybench.datasets._policies import CIFAR10_STATS

    for name in ("cifar-synthetic", "cifar100"):
        dataset = create_dataset(name, n_train=64, n_test=10) if name == "cifar-synthetic" else create_dataset(name)
        x = create_dataset("cifar-synthetic", n_train=64, n_test=10).load().x_train[:16]
        own, quirk = (_view(dataset, p, x, 3) for p in ("autoaugment-cutout16", "autoaugment-cutout16-c10stats"))
        mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in CIFAR10_STATS)
        ds_mean, ds_std = (torch.tensor(v).view(1, -1, 1, 1) for v in (dataset.mean, dataset.std))
        cut = own == 0  # Cutout zeroes the normalised image in both views
        expected = torch.where(cut, torch.zeros(()), ((own * ds_std + ds_mean) - mean) / std)
        torch.testing.assert_close(quirk, expected, rtol=1e-5, atol=1e-5)
        assert torch.equal(quirk == 0, cut)


def test_the_policies_are_tagged_with_their_provenance() -> None:
    batches = _batches()
    assert batches["digits"][0].policy("strong").source == "suite"
    assert batches["mnist1d"][0].policy("strong").source == "suite"
    cifar = batches["cifar"][0]
    assert all(cifar.policy(p).source == "paper" for p in cifar.augment_policies)
    with pytest.raises(ConfigError, match="no augmentation policy 'strong'.*weak, weak\\+rot20"):
        cifar.policy("strong")


# ---------------------------------------------------------------- the operations against Pillow and scipy
@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, torch.Tensor]:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    imgs[3] = 7  # a flat image
    imgs[4, :, :, 0] = rng.integers(100, 110, (32, 32))  # a narrow range
    return imgs, torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()


def _pil(imgs: np.ndarray, fn) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(fn(Image.fromarray(i))) for i in imgs])).permute(0, 3, 1, 2)


@pytest.mark.parametrize("factor", [0.05, 0.5, 1.18, 1.9])
def test_enhancements_equal_pillow_bit_for_bit(images, factor: float) -> None:
    imgs, x = images
    f = torch.full((len(x),), factor)
    for ours, theirs in ((ops.brightness, ImageEnhance.Brightness), (ops.color, ImageEnhance.Color),
                         (ops.contrast, ImageEnhance.Contrast), (ops.sharpness, ImageEnhance.Sharpness)):
        assert torch.equal(ours(x, f), _pil(imgs, lambda im, e=theirs: e(im).enhance(factor))), theirs.__name__


def test_lookup_operations_equal_pillow_bit_for_bit(images) -> None:
    imgs, x = images
    n = len(x)
    assert torch.equal(ops.autocontrast(x), _pil(imgs, ImageOps.autocontrast))
    assert torch.equal(ops.equalize(x), _pil(imgs, ImageOps.equalize))
    assert torch.equal(ops.invert(x), _pil(imgs, ImageOps.invert))
    for bits in (1, 2, 4, 8):
        assert torch.equal(ops.posterize(x, torch.full((n,), bits)),
                           _pil(imgs, lambda im, b=bits: ImageOps.posterize(im, b)))
    for threshold in (0.0, 100.5, 205.0, 256.0):
        assert torch.equal(ops.solarize(x, torch.full((n,), threshold)),
                           _pil(imgs, lambda im, t=threshold: ImageOps.solarize(im, t)))


def test_geometric_operations_follow_pillows_nearest_mapping(images) -> None:
    imgs, x = images
    n = len(x)
    for v in (0.24, -0.21):
        assert torch.equal(ops.shear_x(x, torch.full((n,), v)),
                           _pil(imgs, lambda im, v=v: im.transform(im.size, Image.AFFINE, (1, v, 0, 0, 1, 0))))
        assert torch.equal(ops.shear_y(x, torch.full((n,), v)),
                           _pil(imgs, lambda im, v=v: im.transform(im.size, Image.AFFINE, (1, 0, 0, v, 1, 0))))
    for v in (9.0, -3.0, 7.3):
        assert torch.equal(ops.translate_x(x, torch.full((n,), v)),
                           _pil(imgs, lambda im, v=v: im.transform(im.size, Image.AFFINE, (1, 0, v, 0, 1, 0))))
        assert torch.equal(ops.translate_y(x, torch.full((n,), v)),
                           _pil(imgs, lambda im, v=v: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, v))))
    for degrees in (6.0, -13.7, 20.0, 29.9):  # Pillow maps in fixed point: a rare boundary pixel lands one over
        differs = ops.rotate(x, torch.full((n,), degrees)) != _pil(imgs, lambda im, d=degrees: im.rotate(d))
        assert float(differs.float().mean()) < 0.005, degrees


def test_keras_shift_is_scipys_affine_transform_with_keras_matrix() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(1)
    img = rng.uniform(0, 255, (1, 3, 32, 32))
    theta, tx, ty = 13.0, 4.7, -6.2
    ours = ops.keras_affine(torch.from_numpy(img), torch.tensor([theta]), torch.tensor([tx]), torch.tensor([ty]))
    # keras_preprocessing.image.apply_affine_transform, written out: rotation . shift, offset to the centre
    t = np.deg2rad(theta)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    o = 32 / 2 + 0.5
    to_centre, back = np.array([[1, 0, o], [0, 1, o], [0, 0, 1]]), np.array([[1, 0, -o], [0, 1, -o], [0, 0, 1]])
    matrix = to_centre @ rotation @ shift @ back
    reference = np.stack([ndimage.affine_transform(img[0, c], matrix[:2, :2], matrix[:2, 2], order=1,
                                                   mode="nearest") for c in range(3)])
    assert np.allclose(ours[0].numpy(), reference, atol=1e-3)


def test_autoaugment_magnitudes_follow_sops_mapping() -> None:
    assert autoaugment_value("Rotate", 2) == 6.0 and autoaugment_value("TranslateXAbs", 9) == 9.0
    assert autoaugment_value("Posterize2", 7) == 2.0 and autoaugment_value("Solarize", 2) == 205.0
    assert autoaugment_value("Contrast", 6) == pytest.approx(1.18)
    assert autoaugment_value("ShearY", 8) == pytest.approx(0.24)


def test_cutouts() -> None:
    x = torch.full((64, 3, 32, 32), 200, dtype=torch.uint8)
    grey = cutout_grey(x, torch.Generator().manual_seed(0))
    boxed = (grey != x).any(dim=1)
    assert bool(boxed.any())
    assert set(grey.permute(0, 2, 3, 1)[boxed].unique(dim=0).flatten().tolist()) == set(CUTOUT_GREY)
    assert int(boxed.sum(dim=(1, 2)).max()) <= 17 * 17  # at most half the width per side, both ends included
    z = cutout_zero(torch.ones(64, 3, 32, 32), torch.Generator().manual_seed(0), 16)
    zeroed = (z == 0).all(dim=1)
    assert int(zeroed.sum(dim=(1, 2)).max()) == 16 * 16 and int(zeroed.sum(dim=(1, 2)).min()) >= 8 * 8


# ---------------------------------------------------------------- recipes and methods reach them
def _cifar_run(**train: object) -> object:
    grid = Grid(name="views", datasets=["cifar-synthetic"], methods=["ce"], noise=["sym:0.2"], seeds=[1],
                train={"protocol": "fast", "epochs": 1, "device": "cpu", "batch_size": 32, "arch": "airbench",
                       "arch_kwargs": {"widths": [8, 8, 8], "stem": 4}, **train},
                dataset_params={"cifar-synthetic": {"n_train": 96, "n_test": 32}}, source="views.toml")
    return expand_grid(grid)[0]


def test_a_recipe_trains_under_a_named_policy_and_without_normalisation() -> None:
    run = _cifar_run(augment="autoaugment-cutout16", normalize=False)
    assert run.run_id != _cifar_run().run_id
    out = Trainer(run).run()
    assert len(out["history"]) == 1
    ctx, _ = Trainer(run).setup()
    raw = ctx.data.x_train[:4]
    assert torch.equal(ctx.prepare(raw), raw.float() / 255)  # ToTensor() without Normalize
    ctx.begin_epoch(0)
    strong = ctx.augment(raw, policy="randaugment-3-5")
    ctx.begin_epoch(0)
    again = ctx.augment(raw, policy="randaugment-3-5")
    assert torch.equal(strong, again) and not torch.equal(strong, ctx.augment(raw, policy="randaugment-3-5"))
    assert float(strong.min()) >= 0 and float(strong.max()) <= 1


@pytest.mark.parametrize(("train", "match"), [
    ({"augment": "autoaugment"}, "views.toml: \\[train\\]: augment 'autoaugment' is not an augmentation policy.*"
                                 "Did you mean 'autoaugment-cutout16'"),
    ({"augment": 3}, "augment must be true or false or a string"),
])
def test_unknown_policies_are_refused_before_anything_runs(train: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _cifar_run(**train)


def test_normalize_false_is_refused_where_inputs_are_not_normalised() -> None:
    grid = Grid(name="d", datasets=["digits"], methods=["ce"], noise=["sym:0.2"], seeds=[1],
                train={"normalize": False}, source="d.toml")
    with pytest.raises(ConfigError, match="d.toml: \\[train\\]: normalize = false has no meaning for dataset 'digits'"):
        expand_grid(grid)
