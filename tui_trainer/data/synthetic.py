"""Random images of a chosen shape and class count, learnable: each class has its own mean
image, and samples are noisy uint8 copies of it. Stored and augmented like CIFAR-10, so
benchmarks on it exercise the real image path."""

from __future__ import annotations

import os

from ..errors import UserError
from ..models import parameter_count
from . import DataBundle

DATA_SEED = 1234  # the data are the same in every run; --seed changes only the training order


# Bytes per element at the peak of `make_tensors`: the float32 noise, float32 temporaries and the
# uint8 result (12.05 measured for 3x32x32 images).
GENERATION_BYTES = 12


def memory_needed(config) -> int:
    """About the host memory the synthetic data need at the peak of their generation (the
    validation split is made while the training split is held). Model and batches come on top,
    so a run that needs more than this cannot start."""
    c, h, w = config.synthetic_shape
    per_sample = c * h * w
    train, val = config.synthetic_train, config.synthetic_val
    peak = max(train * GENERATION_BYTES, train + val * GENERATION_BYTES) * per_sample
    prototypes = config.synthetic_classes * per_sample * 4 * 2
    # float32 weights, their gradients and two optimizer moments
    model = 16 * parameter_count(config.model, (c, h, w), config.synthetic_classes)
    return peak + prototypes + model


def available_memory() -> int | None:
    """Bytes of memory this machine can give now (MemAvailable on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def preflight(config) -> None:
    """Refuse sizes whose data cannot fit in memory, before anything is allocated or written."""
    needed, available = memory_needed(config), available_memory()
    if available is not None and needed > available:
        c, h, w = config.synthetic_shape
        raise UserError(f"the synthetic data ({config.synthetic_train:,} + {config.synthetic_val:,} samples of "
                        f"{c}x{h}x{w}, {config.synthetic_classes} classes) and the {config.model} model need at least "
                        f"{_gb(needed)} of memory, but {_gb(available)} is available; use smaller --synthetic-train, "
                        "--synthetic-val or --synthetic-shape")


def _gb(n: int) -> str:
    return f"{n / 1e9:,.1f} GB" if n < 1e12 else f"{n / 1e12:,.1f} TB"


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


def build(config, device, rank: int = 0, world_size: int = 1, emit=None) -> DataBundle:
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
