"""Random images of a chosen shape and class count, learnable: each class has its own mean
image, and samples are noisy uint8 copies of it. Stored and augmented like CIFAR-10, so
benchmarks on it exercise the real image path."""

from __future__ import annotations

from . import DataBundle

DATA_SEED = 1234  # the data are the same in every run; --seed changes only the training order


def class_prototypes(shape, num_classes: int):
    """One smooth mean image per class: random 4x4 patterns upsampled, so that class identity
    survives the crop-and-flip augmentation the way it does in natural images."""
    import torch

    g = torch.Generator().manual_seed(DATA_SEED)
    c, h, w = shape
    coarse = torch.rand((num_classes, c, min(4, h), min(4, w)), generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return smooth * 255


def make_tensors(shape, num_classes: int, n: int, generator):
    import torch

    prototypes = class_prototypes(shape, num_classes)
    labels = torch.randint(0, num_classes, (n,), generator=generator)
    noise = torch.randn((n, *shape), generator=generator) * 60
    images = (prototypes[labels] * 0.5 + 64 + noise).clamp_(0, 255).to(torch.uint8)
    return images, labels


def build(config, device, rank: int = 0, world_size: int = 1) -> DataBundle:
    import torch

    from .loader import BatchTransform, TensorLoader

    shape = tuple(config.synthetic_shape)
    gen = torch.Generator().manual_seed(DATA_SEED + 1)
    x_train, y_train = make_tensors(shape, config.synthetic_classes, config.synthetic_train, gen)
    x_val, y_val = make_tensors(shape, config.synthetic_classes, config.synthetic_val, gen)
    c = shape[0]
    norm = dict(mean=(0.5,) * c, std=(0.25,) * c, scale=1 / 255)
    augment = config.augment and len(shape) == 3 and min(shape[1:]) >= 8
    train_tf = BatchTransform(**norm, crop_padding=4 if augment else 0, flip=augment)
    seed = config.seed or 0
    train = TensorLoader(x_train, y_train, config.batch_size, transform=train_tf, shuffle=True,
                         device=device, seed=seed, rank=rank, world_size=world_size)
    val = TensorLoader(x_val, y_val, config.eval_batch_size, transform=BatchTransform(**norm),
                       device=device, rank=rank, world_size=world_size, pad_shards=False)
    names = tuple(f"class {i}" for i in range(config.synthetic_classes))
    return DataBundle("synthetic", train, val, config.synthetic_classes, names, shape)
