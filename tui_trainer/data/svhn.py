"""SVHN through torchvision's own SVHN class (train_32x32.mat and test_32x32.mat, MATLAB files
read with scipy, in DATA_DIR/svhn), kept on the training device as uint8 (N, 3, 32, 32); the
label 10 of the digit 0 becomes 0, as torchvision does. Augmentation: a random crop with 4 px
padding, never a flip (a mirrored digit is another glyph). The "extra" split is not used."""

from __future__ import annotations

from .dataset_files import DatasetFiles, Remote, bundle, corrupted, ensure

_URL = "http://ufldl.stanford.edu/housenumbers/"
FILES = DatasetFiles(
    "SVHN", "svhn", ("train_32x32.mat", "test_32x32.mat"),
    (Remote("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", (_URL + "train_32x32.mat",)),
     Remote("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3", (_URL + "test_32x32.mat",))),
    _URL)
MEAN = (0.4377, 0.4438, 0.4728)  # the training set's per-channel statistics
STD = (0.1980, 0.2010, 0.1970)


def preflight(config) -> None:
    ensure(FILES, config)


def build(config, device, rank: int = 0, world_size: int = 1, emit=None):
    import torch
    from torchvision.datasets import SVHN

    root = ensure(FILES, config)
    folder = root / FILES.folder
    try:  # torchvision checks each file's MD5, then reads it with scipy.io.loadmat
        train_set, test_set = SVHN(str(folder), split="train"), SVHN(str(folder), split="test")
    except (RuntimeError, ValueError, KeyError, OSError, TypeError, IndexError, NotImplementedError) as exc:
        raise corrupted(FILES, root, exc) from None

    def tensors(ds):
        images = torch.from_numpy(ds.data).contiguous()  # already N,3,32,32 uint8
        labels = torch.from_numpy(ds.labels).to(torch.int64).reshape(-1)
        if (images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (3, 32, 32)
                or len(labels) != len(images) or len(images) == 0 or labels.min() < 0 or labels.max() >= 10):
            raise corrupted(FILES, root, ValueError(f"images {tuple(images.shape)} {images.dtype}, "
                                                    f"{len(labels)} labels"))
        return images, labels

    names = tuple(str(i) for i in range(10))
    return bundle("svhn", config, device, rank, world_size, tensors(train_set), tensors(test_set), names,
                  mean=MEAN, std=STD, crop_padding=4, flip=False)
