"""The files a torchvision dataset class reads, found before torch loads: already extracted,
or extracted from the downloaded archives lying where torchvision puts them, or downloaded
(when allowed), or else one line saying which files to put where. Also the common last step
of every such dataset: uint8 tensors into a DataBundle, kept and augmented on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .fetch import DownloadError, download_file, extract_tar, gunzip


@dataclass(frozen=True)
class Remote:
    filename: str
    md5: str
    urls: tuple[str, ...]  # mirrors, tried in order
    unpack: str = ""  # "tar": an archive in the data root holding `folder`; "gz": decompressed beside itself


@dataclass(frozen=True)
class DatasetFiles:
    title: str  # as the messages name it: "MNIST"
    folder: str  # under the data root, where torchvision reads: "MNIST/raw"
    needed: tuple[str, ...]  # what torchvision reads there
    remotes: tuple[Remote, ...]
    page: str  # where a person can get the files

    def hint(self, root: Path) -> str:
        names = [r.filename for r in self.remotes]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        kinds = {r.unpack for r in self.remotes}
        where = root if kinds == {"tar"} else root / self.folder
        extracted = {"tar": f" (or its extracted {self.folder}/ folder)", "gz": " (or them decompressed)"}.get(
            next(iter(kinds)) if len(kinds) == 1 else "", "")
        return f"put {listed}{extracted} (from {self.page}) in {where}, or point --data-dir at them"

    def present(self, root: Path) -> bool:
        return all((root / self.folder / name).is_file() for name in self.needed)


def data_root(files: DatasetFiles, data_dir: Path) -> Path:
    """The root torchvision is given; --data-dir may also name the dataset's own folder."""
    parts = Path(files.folder).parts
    if data_dir.parts[-len(parts):] == parts:
        root = data_dir.parents[len(parts) - 1]
        if files.present(root) or any((data_dir / r.filename).is_file() for r in files.remotes):
            return root
    return data_dir


def ensure(files: DatasetFiles, config) -> Path:
    """The data root holding every needed file; raises UserError (one line) otherwise."""
    root = data_root(files, config.resolved_data_dir)
    if files.present(root):
        return root
    folder = root / files.folder
    for remote in files.remotes:
        local = (root if remote.unpack == "tar" else folder) / remote.filename
        product = folder / (remote.filename[:-3] if remote.unpack == "gz" else remote.filename)
        if remote.unpack != "tar" and product.is_file():
            continue
        if not local.is_file():
            _download(files, remote, local, root, config.download)
        if remote.unpack == "tar":
            extract_tar(local, root, files.folder, files.hint(root))
        elif remote.unpack == "gz":
            gunzip(local, product, files.hint(root))
    if not files.present(root):
        raise UserError(f"the {files.title} files in {root} are incomplete (expected {', '.join(files.needed)} in "
                        f"{folder}); {files.hint(root)}")
    return root


def _download(files: DatasetFiles, remote: Remote, local: Path, root: Path, allowed: bool) -> None:
    if not allowed:
        raise UserError(f"{files.title} is not in {root}; {files.hint(root)} (or allow the download)")
    reason = ""
    for url in remote.urls:
        try:
            download_file(url, local, what=f"{files.title} ({remote.filename})", md5=remote.md5)
            return
        except DownloadError as exc:
            reason = exc.reason
    raise UserError(f"{files.title} is not in {root} and could not be downloaded ({reason}); {files.hint(root)}")


def corrupted(files: DatasetFiles, root: Path, exc: BaseException) -> UserError:
    detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return UserError(f"the {files.title} files in {root / files.folder} are incomplete or corrupted ({detail}); "
                     f"delete them and {files.hint(root)}")


def bundle(name: str, config, device, rank: int, world_size: int, train, val, class_names, *,
           mean, std, crop_padding: int = 0, flip: bool = False):
    """(images uint8 N,C,H,W, labels int64) pairs into a DataBundle on `device`, with augmentation
    (when config.augment) as batched tensor ops there."""
    from . import DataBundle
    from .loader import BatchTransform, TensorLoader

    (x_train, y_train), (x_val, y_val) = train, val
    norm = dict(mean=tuple(mean), std=tuple(std), scale=1 / 255)
    augment = config.augment
    train_tf = BatchTransform(**norm, crop_padding=crop_padding if augment else 0, flip=flip and augment)
    seed = config.seed or 0
    train_loader = TensorLoader(x_train, y_train, config.batch_size, transform=train_tf, shuffle=True,
                                device=device, seed=seed, rank=rank, world_size=world_size)
    val_loader = TensorLoader(x_val, y_val, config.eval_batch_size, transform=BatchTransform(**norm),
                              device=device, rank=rank, world_size=world_size, pad_shards=False)
    return DataBundle(name, train_loader, val_loader, len(class_names), tuple(class_names),
                      tuple(x_train.shape[1:]))
