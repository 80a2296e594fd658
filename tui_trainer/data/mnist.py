"""MNIST and Fashion-MNIST through torchvision's own classes (idx-ubyte files in
DATA_DIR/MNIST/raw and DATA_DIR/FashionMNIST/raw), kept on the training device as uint8
(N, 1, 28, 28). Augmentation (--augment): a random crop with 2 px padding; Fashion-MNIST also
flips left-right (clothes are symmetric), MNIST never does (a mirrored digit is another glyph).
"""

from __future__ import annotations

from .dataset_files import DatasetFiles, Remote, bundle, corrupted, ensure

_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

FILES = {
    "mnist": DatasetFiles(
        "MNIST", "MNIST/raw", _NAMES,
        tuple(Remote(f"{n}.gz", md5, tuple(m + f"{n}.gz" for m in _MNIST_MIRRORS), "gz") for n, md5 in zip(_NAMES, (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))),
        "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    "fashion-mnist": DatasetFiles(
        "Fashion-MNIST", "FashionMNIST/raw", _NAMES,
        tuple(Remote(f"{n}.gz", md5, tuple(m + f"{n}.gz" for m in _FASHION_MIRRORS), "gz") for n, md5 in zip(_NAMES, (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))),
        "https://github.com/zalandoresearch/fashion-mnist"),
}
# Per-pixel statistics of each training set, the customary normalisation.
STATS = {"mnist": ((0.1307,), (0.3081,)), "fashion-mnist": ((0.2860,), (0.3530,))}
FLIP = {"mnist": False, "fashion-mnist": True}
CLASSES = {"mnist": tuple(str(i) for i in range(10))}  # Fashion-MNIST's come from torchvision


def preflight(config) -> None:
    ensure(FILES[config.dataset], config)


def build(config, device, rank: int = 0, world_size: int = 1, emit=None):
    import torch
    from torchvision.datasets import MNIST, FashionMNIST

    files = FILES[config.dataset]
    root = ensure(files, config)
    cls = MNIST if config.dataset == "mnist" else FashionMNIST
    try:  # torchvision's readers assert on a bad header and raise on a wrong dtype or shape
        train_set, test_set = cls(str(root), train=True), cls(str(root), train=False)
    except (RuntimeError, AssertionError, ValueError, TypeError, IndexError, OSError) as exc:
        raise corrupted(files, root, exc) from None

    def tensors(ds):
        images, labels = ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64)
        if len(images) != len(labels) or len(images) == 0 or images.shape[2:] != (28, 28):
            raise corrupted(files, root, ValueError(f"{len(images)} images of {tuple(images.shape[2:])}, "
                                                    f"{len(labels)} labels"))
        if labels.min() < 0 or labels.max() >= 10:
            raise corrupted(files, root, ValueError(f"labels outside 0-9 ({int(labels.min())}..{int(labels.max())})"))
        return images, labels

    names = CLASSES.get(config.dataset) or tuple(cls.classes)
    mean, std = STATS[config.dataset]
    return bundle(config.dataset, config, device, rank, world_size, tensors(train_set), tensors(test_set), names,
                  mean=mean, std=std, crop_padding=2, flip=FLIP[config.dataset])
