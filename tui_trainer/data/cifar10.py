"""CIFAR-10 through torchvision's own loader, kept in memory as uint8 tensors on the training
device and augmented there in batches (random crop with padding 4, horizontal flip), with
the seed's normalisation.

Finding the data needs no torch: `preflight` looks for the extracted folder, then the
archive (which it extracts), then tries the download, and otherwise says in one line where
to put the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

from .. import catalog
from ..errors import UserError
from . import DataBundle

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
         "test_batch", "batches.meta")
MEAN = (0.4914, 0.4822, 0.4465)  # the seed's normalisation
STD = (0.2023, 0.1994, 0.2010)


def data_root(config) -> Path:
    """The folder that holds cifar-10-batches-py; --data-dir may also name that folder itself."""
    root = config.resolved_data_dir
    if root.name == FOLDER and (root / "batches.meta").exists():
        return root.parent
    return root


def _has_files(root: Path) -> bool:
    return all((root / FOLDER / name).is_file() for name in FILES)


def _where_hint(root: Path) -> str:
    return (f"put {ARCHIVE} (from https://www.cs.toronto.edu/~kriz/cifar.html) or its extracted "
            f"{FOLDER}/ folder in {root}, or point --data-dir at them")


def _extract(archive: Path, root: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(FOLDER + "/") or m.name == FOLDER]
            if not members:
                raise UserError(f"{archive} does not contain {FOLDER}/; is it the Python version of CIFAR-10?")
            tar.extractall(root, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"could not extract {archive} ({exc}); download it again, then {_where_hint(root)}") from None


def _not_downloaded(root: Path, exc: BaseException) -> UserError:
    reason = getattr(exc, "reason", None) or exc
    return UserError(f"CIFAR-10 is not in {root} and could not be downloaded ({reason}); {_where_hint(root)}")


def _download(root: Path) -> None:
    part = root / (ARCHIVE + ".part")
    try:
        # Connect first: offline, the one-line error comes before anything is printed or created.
        response = urllib.request.urlopen(URL, timeout=30)
    except (OSError, ValueError) as exc:
        raise _not_downloaded(root, exc) from None
    print(f"tui-trainer: downloading CIFAR-10 (163 MB) to {root} ...", file=sys.stderr, flush=True)
    created = not root.exists()
    try:
        with response:
            root.mkdir(parents=True, exist_ok=True)
            md5 = hashlib.md5()
            with open(part, "wb") as out:
                while chunk := response.read(1 << 20):
                    md5.update(chunk)
                    out.write(chunk)
        if md5.hexdigest() != ARCHIVE_MD5:
            raise OSError("the download is corrupted (checksum mismatch)")
        os.replace(part, root / ARCHIVE)
    except (OSError, ValueError) as exc:
        # A failed download leaves nothing behind: no partial archive, no empty data folder.
        with contextlib.suppress(OSError):
            part.unlink()
        if created:
            with contextlib.suppress(OSError):
                root.rmdir()
        raise _not_downloaded(root, exc) from None


def preflight(config) -> None:
    root = data_root(config)
    if _has_files(root):
        return
    archive = root / ARCHIVE
    if not archive.is_file():
        if not config.download:
            raise UserError(f"CIFAR-10 is not in {root}; {_where_hint(root)} (or allow the download)")
        _download(root)
    _extract(archive, root)
    if not _has_files(root):
        raise UserError(f"{archive} did not contain the expected CIFAR-10 files; {_where_hint(root)}")


def build(config, device, rank: int = 0, world_size: int = 1, emit=None) -> DataBundle:
    import torch
    from torchvision.datasets import CIFAR10

    from .loader import BatchTransform, TensorLoader

    preflight(config)
    root = data_root(config)
    try:
        train_set = CIFAR10(str(root), train=True, download=False)
        test_set = CIFAR10(str(root), train=False, download=False)
    except RuntimeError as exc:
        raise UserError(f"the CIFAR-10 files in {root / FOLDER} are incomplete or corrupted ({exc}); "
                        f"delete that folder and {_where_hint(root)}") from None

    def to_tensors(ds):
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # N,3,32,32 uint8
        return images, torch.tensor(ds.targets, dtype=torch.int64)

    x_train, y_train = to_tensors(train_set)
    x_test, y_test = to_tensors(test_set)
    norm = dict(mean=MEAN, std=STD, scale=1 / 255)
    train_tf = BatchTransform(**norm, crop_padding=4 if config.augment else 0, flip=config.augment)
    seed = config.seed or 0
    train = TensorLoader(x_train, y_train, config.batch_size, transform=train_tf, shuffle=True,
                         device=device, seed=seed, rank=rank, world_size=world_size)
    val = TensorLoader(x_test, y_test, config.eval_batch_size, transform=BatchTransform(**norm),
                       device=device, rank=rank, world_size=world_size, pad_shards=False)
    names = tuple(getattr(train_set, "classes", None) or catalog.CIFAR10_CLASSES)
    return DataBundle("cifar10", train, val, 10, names, (3, 32, 32))
