"""A loader for image folders too large for the memory budget: images decoded from disk by
DataLoader workers, batches moved to the device and augmented there as batched tensor ops.

It follows TensorLoader's contract, so resume is exact: one CPU generator draws each epoch's
order and augmentation; `state_dict(batches_done)` is its state at the epoch's start plus the
batches done, and a resumed epoch skips those batches without decoding them.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .loader import BatchTransform, ResumePosition, epoch_indices, shard_size


class FolderImages(Dataset):
    """(uint8 image resized to `size`, label) from the file at each index."""

    def __init__(self, root: Path, files: list[str], labels: list[int], size: tuple[int, int]) -> None:
        self.root, self.files, self.labels, self.size = Path(root), list(files), list(labels), tuple(size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        from .image_decode import decode

        path = self.root / self.files[index]
        try:
            image = decode(path, self.size)
        except Exception as exc:  # noqa: BLE001 - checked readable when the run started; changed since
            raise RuntimeError(f"cannot decode {path} ({exc}); it was readable when the run started") from None
        return image, self.labels[index]


class _EpochOrder(Sampler):
    """The indices of the current epoch, set before each pass (the DataLoader's workers persist)."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class StreamingLoader(ResumePosition):
    def __init__(self, dataset: FolderImages, batch_size: int, *, transform: BatchTransform, shuffle: bool = False,
                 device: torch.device | str = "cpu", seed: int = 0, rank: int = 0, world_size: int = 1,
                 pad_shards: bool = True, workers: int = 2) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.transform = transform
        self.shuffle = shuffle
        self.device = torch.device(device)
        self.rank, self.world_size, self.pad_shards = rank, world_size, pad_shards
        self.workers = workers
        self.generator = torch.Generator().manual_seed(seed)
        self.start_epoch()
        self._order = _EpochOrder()
        # Its own generator: a DataLoader draws its workers' base seed each epoch, from torch's
        # global generator otherwise, which would shift dropout after a resume.
        self._loader = DataLoader(dataset, batch_size=batch_size, sampler=self._order, num_workers=workers,
                                  persistent_workers=workers > 0, pin_memory=self.device.type == "cuda",
                                  generator=torch.Generator().manual_seed(seed))

    @property
    def num_samples(self) -> int:
        return shard_size(len(self.dataset), self.rank, self.world_size, self.pad_shards)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self):
        self.start_epoch()
        perm = epoch_indices(len(self.dataset), self.generator, self.shuffle, self.rank, self.world_size,
                             self.pad_shards)
        params = self.transform.sample_params(len(perm), self.generator) if self.transform.random else {}
        skip = self.take_skip()
        bs = self.batch_size
        self._order.indices = perm[skip * bs:].tolist()
        for b, (x, y) in enumerate(self._loader, start=skip):
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if params:
                lo = b * bs
                x = self.transform.augment(x, {k: v[lo:lo + len(y)].to(self.device) for k, v in params.items()})
            yield self.transform.normalise(x), y
