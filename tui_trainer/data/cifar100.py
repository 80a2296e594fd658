"""CIFAR-100 through torchvision's own CIFAR100 class (DATA_DIR/cifar-100-python: train, test
and meta, pickled), kept on the training device as uint8 (N, 3, 32, 32); its 100 fine labels.
Augmentation as for CIFAR-10: a random crop with 4 px padding and a left-right flip."""

from __future__ import annotations

from .dataset_files import DatasetFiles, Remote, bundle, corrupted, ensure

FILES = DatasetFiles(
    "CIFAR-100", "cifar-100-python", ("train", "test", "meta"),
    (Remote("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
            ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",), "tar"),),
    "https://www.cs.toronto.edu/~kriz/cifar.html")
MEAN = (0.5071, 0.4865, 0.4409)  # the training set's per-channel statistics
STD = (0.2673, 0.2564, 0.2762)


def preflight(config) -> None:
    ensure(FILES, config)


def build(config, device, rank: int = 0, world_size: int = 1, emit=None):
    import torch
    from torchvision.datasets import CIFAR100

    root = ensure(FILES, config)
    try:  # torchvision checks each file's MD5, then unpickles it
        train_set, test_set = CIFAR100(str(root), train=True), CIFAR100(str(root), train=False)
    except (RuntimeError, ValueError, KeyError, EOFError, OSError, IndexError) as exc:
        raise corrupted(FILES, root, exc) from None

    def tensors(ds):
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # N,32,32,3 -> N,3,32,32
        labels = torch.tensor(ds.targets, dtype=torch.int64)
        if len(labels) != len(images) or len(images) == 0 or labels.min() < 0 or labels.max() >= 100:
            raise corrupted(FILES, root, ValueError(f"{len(images)} images, {len(labels)} labels"))
        return images, labels

    names = tuple(train_set.classes)
    if len(names) != 100:
        raise corrupted(FILES, root, ValueError(f"meta names {len(names)} classes, not 100"))
    return bundle("cifar100", config, device, rank, world_size, tensors(train_set), tensors(test_set), names,
                  mean=MEAN, std=STD, crop_padding=4, flip=True)
