"""scikit-learn's bundled 8x8 digits: offline, 1,797 images, a fixed stratified 80/20 split."""

from __future__ import annotations

from . import DataBundle

SPLIT_SEED = 42  # the split never changes between runs, whatever --seed says


def load_split():
    """(x_train, y_train, x_val, y_val) as numpy arrays; images (N, 1, 8, 8) in 0..16."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None, :, :]
    return train_test_split(images, digits.target.astype(np.int64), test_size=0.2,
                            stratify=digits.target, random_state=SPLIT_SEED)


def build(config, device, rank: int = 0, world_size: int = 1, emit=None) -> DataBundle:
    import torch

    from .loader import BatchTransform, TensorLoader

    x_train, x_val, y_train, y_val = load_split()
    x_train, x_val = torch.from_numpy(x_train), torch.from_numpy(x_val)
    mean = float(x_train.mean()) / 16.0
    std = float(x_train.std()) / 16.0
    transform = BatchTransform(mean=(mean,), std=(std,), scale=1 / 16.0)
    seed = config.seed or 0
    train = TensorLoader(x_train, torch.from_numpy(y_train), config.batch_size, transform=transform,
                         shuffle=True, device=device, seed=seed, rank=rank, world_size=world_size)
    val = TensorLoader(x_val, torch.from_numpy(y_val), config.eval_batch_size, transform=transform,
                       device=device, rank=rank, world_size=world_size, pad_shards=False)
    return DataBundle("digits", train, val, 10, tuple(str(i) for i in range(10)), (1, 8, 8))
