"""Datasets and the in-memory tensor loader: the digits split, synthetic data, batching,
batched random crop and flip against a per-image reference, and sharding across ranks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tui_trainer.config import make_config
from tui_trainer.data import build_data
from tui_trainer.data.digits import load_split
from tui_trainer.data.loader import BatchTransform, TensorLoader, random_crop

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")


# ---------------------------------------------------------------------- digits

def test_digits_split_is_stratified_disjoint_and_complete():
    from sklearn.datasets import load_digits

    x_train, x_val, y_train, y_val = load_split()
    assert x_train.shape == (1437, 1, 8, 8) and x_val.shape == (360, 1, 8, 8)
    per_class = np.bincount(load_digits().target)
    assert np.all(np.abs(np.bincount(y_val) - per_class * 0.2) <= 1)
    rows = {r.tobytes(): label for r, label in zip(x_train.reshape(len(x_train), -1), y_train)}
    val_rows = {r.tobytes(): label for r, label in zip(x_val.reshape(len(x_val), -1), y_val)}
    assert not rows.keys() & val_rows.keys()
    everything = load_digits()
    full = {r.astype(np.float32).tobytes(): t for r, t in zip(everything.data, everything.target)}
    assert {**rows, **val_rows} == full  # every image once, with its own label


def test_digits_split_does_not_depend_on_the_seed_but_the_order_does():
    a = build_data(make_config("digits", seed=0, batch_size=64), CPU)
    b = build_data(make_config("digits", seed=7, batch_size=64), CPU)
    assert (a.num_classes, a.class_names, a.input_shape) == (10, tuple("0123456789"), (1, 8, 8))
    assert (a.train_size, a.val_size) == (1437, 360)
    assert torch.equal(a.val_loader.inputs, b.val_loader.inputs)
    assert torch.equal(a.train_loader.inputs, b.train_loader.inputs)
    first_a, first_b = next(iter(a.train_loader))[1], next(iter(b.train_loader))[1]
    assert not torch.equal(first_a, first_b)
    # normalised with the training split's statistics
    assert float(a.train_loader.inputs.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(a.train_loader.inputs.std()) == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------------- synthetic

def test_synthetic_data_follow_the_config_and_the_data_seed():
    config = make_config("synthetic", synthetic_shape=(3, 8, 8), synthetic_classes=4, synthetic_train=40,
                         synthetic_val=12, batch_size=16, eval_batch_size=12, seed=0)
    a = build_data(config, CPU)
    b = build_data(config.replace(seed=3), CPU)
    assert (a.train_size, a.val_size, a.num_classes, a.input_shape) == (40, 12, 4, (3, 8, 8))
    assert len(a.class_names) == 4
    x, y = next(iter(a.val_loader))
    assert x.shape == (12, 3, 8, 8) and x.dtype == torch.float32 and 0 <= int(y.min()) and int(y.max()) < 4
    assert torch.equal(a.val_loader.inputs, b.val_loader.inputs)  # the data never change
    assert not torch.equal(next(iter(a.train_loader))[1], next(iter(b.train_loader))[1])  # the order does
    # learnable: a sample is nearer its own class's mean than any other class's mean
    vx, vy = a.train_loader.inputs.float().flatten(1), a.train_loader.targets
    means = torch.stack([vx[vy == c].mean(0) for c in range(4)])
    assert float((torch.cdist(vx, means).argmin(1) == vy).float().mean()) > 0.9


# ---------------------------------------------------------------------- TensorLoader basics

def identified(n: int, shape=(3, 8, 8), seed: int = 0):
    """uint8 images with values 1..255 (never 0, so zero padding shows) and target = index."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, *shape), generator=g, dtype=torch.uint8), torch.arange(n)


def epoch_targets(loader) -> list[int]:
    return [int(t) for _, y in loader for t in y]


def test_batches_cover_every_sample_once_with_an_uneven_last_batch():
    x, y = identified(10)
    loader = TensorLoader(x, y, 4, shuffle=True, seed=1)
    assert len(loader) == 3 and len(loader.dataset) == 10
    first, second = epoch_targets(loader), epoch_targets(loader)
    assert [len(b[1]) for b in loader] == [4, 4, 2]
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert first != second  # a new order every epoch
    assert first == epoch_targets(TensorLoader(x, y, 4, shuffle=True, seed=1))  # same seed, same order
    assert epoch_targets(TensorLoader(x, y, 4)) == list(range(10))
    dropped = TensorLoader(x, y, 4, drop_last=True)
    assert len(dropped) == 2 and [len(b[1]) for b in dropped] == [4, 4]


def test_inputs_stay_with_their_targets_and_are_normalised():
    x, y = identified(9)
    transform = BatchTransform(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5), scale=1 / 255)
    loader = TensorLoader(x, y, 4, transform=transform, shuffle=True, seed=2)
    mean = torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.5]).view(3, 1, 1)
    for xb, yb in loader:
        assert xb.dtype == torch.float32
        for image, target in zip(xb, yb):
            expected = (x[target].float() / 255 - mean) / std
            torch.testing.assert_close(image, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- random crop and flip

def reference_crop_flip(image: torch.Tensor, dy: int, dx: int, flip: bool, padding: int) -> torch.Tensor:
    """One image at a time, the obvious way: paste into a zero canvas, cut a window, mirror."""
    c, h, w = image.shape
    canvas = torch.zeros((c, h + 2 * padding, w + 2 * padding), dtype=image.dtype)
    canvas[:, padding:padding + h, padding:padding + w] = image
    out = canvas[:, dy:dy + h, dx:dx + w]
    return out.flip(-1) if flip else out


def test_batched_random_crop_matches_the_per_image_reference():
    x, _ = identified(6, shape=(2, 5, 7))
    offsets = torch.tensor([[0, 0], [6, 6], [3, 3], [0, 6], [6, 0], [2, 5]])  # padding 3: offsets 0..6
    out = random_crop(x, offsets, 3)
    assert out.shape == x.shape
    for image, result, (dy, dx) in zip(x, out, offsets.tolist()):
        assert torch.equal(result, reference_crop_flip(image, dy, dx, False, 3))
    assert torch.equal(out[2], x[2])  # the centre offset is the identity


def test_batch_transform_augment_crops_and_flips_each_image_on_its_own():
    x, _ = identified(4, shape=(3, 6, 6))
    t = BatchTransform(mean=(0.0,) * 3, std=(1.0,) * 3, crop_padding=2, flip=True)
    params = {"offsets": torch.tensor([[0, 4], [2, 2], [4, 1], [1, 3]]),
              "flip": torch.tensor([True, False, True, False])}
    out = t.augment(x, params)
    for i in range(4):
        dy, dx = params["offsets"][i].tolist()
        assert torch.equal(out[i], reference_crop_flip(x[i], dy, dx, bool(params["flip"][i]), 2))


def variants(image: torch.Tensor, padding: int) -> dict[tuple[int, int, bool], torch.Tensor]:
    return {(dy, dx, flip): reference_crop_flip(image, dy, dx, flip, padding)
            for dy in range(2 * padding + 1) for dx in range(2 * padding + 1) for flip in (False, True)}


def test_loader_augmentation_gives_each_image_its_own_crop_and_flip():
    x, y = identified(24, shape=(3, 8, 8), seed=4)
    transform = BatchTransform(mean=(0.5,) * 3, std=(0.25,) * 3, scale=1 / 255, crop_padding=2, flip=True)
    loader = TensorLoader(x, y, 8, transform=transform, shuffle=True, seed=5)
    chosen, mixed_flips = [], 0
    for _ in range(2):
        for xb, yb in loader:
            pixels = torch.round((xb * 0.25 + 0.5) * 255).to(torch.uint8)  # undo the normalisation
            batch_choices = []
            for image, target in zip(pixels, yb):
                matches = [k for k, v in variants(x[target], 2).items() if torch.equal(v, image)]
                assert matches, f"image {int(target)} is not a crop/flip of its source"
                batch_choices.append(matches[0])
            assert len({c[:2] for c in batch_choices}) > 1, "one crop offset for the whole batch"
            mixed_flips += len({c[2] for c in batch_choices}) == 2
            chosen += batch_choices
    assert mixed_flips >= 4, "one flip for the whole batch"
    assert len({c[:2] for c in chosen}) >= 10  # of 25 possible offsets, over 48 draws


def test_loader_flip_alone_mirrors_some_images_of_each_batch():
    x, y = identified(32, shape=(3, 4, 4), seed=6)
    transform = BatchTransform(mean=(0.0,) * 3, std=(1.0,) * 3, scale=1.0, flip=True)
    mixed_batches = 0
    for xb, yb in TensorLoader(x, y, 16, transform=transform, shuffle=True, seed=2):
        flipped = []
        for image, target in zip(xb, yb):
            source = x[target].float()
            assert torch.equal(image, source) or torch.equal(image, source.flip(-1))
            flipped.append(torch.equal(image, source.flip(-1)))
        mixed_batches += len(set(flipped)) == 2
    assert mixed_batches == 2, "each image draws its own flip"


def test_loader_without_augmentation_returns_images_unchanged():
    x, y = identified(8)
    loader = TensorLoader(x, y, 8, transform=BatchTransform(mean=(0.0,) * 3, std=(1.0,) * 3, scale=1.0),
                          shuffle=True)
    xb, yb = next(iter(loader))
    assert torch.equal(xb, x[yb].float())


# ---------------------------------------------------------------------- sharding

@pytest.mark.parametrize("n, world", [(10, 2), (11, 3), (7, 4)])
def test_padded_shards_are_equal_sized_and_cover_everything(n, world):
    x, y = identified(n, shape=(1, 2, 2))
    loaders = [TensorLoader(x, y, 2, shuffle=True, seed=9, rank=r, world_size=world) for r in range(world)]
    shards = [epoch_targets(loader) for loader in loaders]
    per_rank = math.ceil(n / world)
    assert [len(s) for s in shards] == [per_rank] * world
    assert all(loader.num_samples == per_rank and len(loader) == math.ceil(per_rank / 2) for loader in loaders)
    everything = [t for s in shards for t in s]
    assert set(everything) == set(range(n))
    assert len(everything) - len(set(everything)) == per_rank * world - n  # only the padding repeats


@pytest.mark.parametrize("n, world", [(10, 3), (5, 2)])
def test_unpadded_shards_split_the_samples_exactly(n, world):
    x, y = identified(n, shape=(1, 2, 2))
    shards = [epoch_targets(TensorLoader(x, y, 3, rank=r, world_size=world, pad_shards=False)) for r in range(world)]
    everything = [t for s in shards for t in s]
    assert sorted(everything) == list(range(n))
    assert [len(s) for s in shards] == [len(range(r, n, world)) for r in range(world)]
