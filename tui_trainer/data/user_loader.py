"""Loaders over the user's own datasets and DataLoaders (an experiment file's `build_data`),
resumable exactly, as TensorLoader is.

One CPU generator draws each epoch's order (the sampler's) and the workers' seeds (the
DataLoader's). `state_dict(batches_done)` is its state when the epoch began plus the batches
done. A resumed epoch fetches those batches again and drops them, with every global random
generator put back afterwards: a dataset that augments with torch's global generator (no
workers) or with its workers' (seeded by the epoch's draw) then gives the remaining batches
exactly what the interrupted run gave them.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Sampler

from .loader import ResumePosition, epoch_indices, shard_size


class EpochOrder(Sampler):
    """Each epoch's indices, drawn from `generator` (and sharded for this rank under torchrun)."""

    def __init__(self, size: int, generator: torch.Generator, shuffle: bool, rank: int = 0, world_size: int = 1,
                 pad_shards: bool = True) -> None:
        self.size, self.generator, self.shuffle = size, generator, shuffle
        self.rank, self.world_size, self.pad_shards = rank, world_size, pad_shards

    def _indices(self) -> torch.Tensor:
        return epoch_indices(self.size, self.generator, self.shuffle, self.rank, self.world_size, self.pad_shards)

    def __iter__(self):
        return iter(self._indices().tolist())

    def __len__(self) -> int:
        return shard_size(self.size, self.rank, self.world_size, self.pad_shards)


def dataset_loader(dataset, batch_size: int, *, shuffle: bool, seed: int, workers: int = 0, rank: int = 0,
                   world_size: int = 1, pad_shards: bool = True, pin_memory: bool = False):
    """A DataLoader over a map-style dataset whose order comes from one seeded generator;
    the training one (shuffle=True) is wrapped for an exact resume."""
    generator = torch.Generator().manual_seed(seed)
    order = EpochOrder(len(dataset), generator, shuffle, rank, world_size, pad_shards)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=order, num_workers=workers, generator=generator,
                        pin_memory=pin_memory)
    return ResumableLoader(loader, generator) if shuffle else loader


def adopt_loader(loader: DataLoader, seed: int) -> "ResumableLoader":
    """The user's own training DataLoader, its random order drawn from our seeded generator
    (the sampler's and the workers' seeds), so that a resume can replay it."""
    generator = torch.Generator().manual_seed(seed)
    loader.generator = generator
    for sampler in (loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
        if sampler is not None and hasattr(sampler, "generator"):
            sampler.generator = generator
    return ResumableLoader(loader, generator)


class ResumableLoader(ResumePosition):
    def __init__(self, loader: DataLoader, generator: torch.Generator) -> None:
        self.loader = loader
        self.generator = generator
        self.start_epoch()

    @property
    def dataset(self):
        return self.loader.dataset

    @property
    def batch_size(self):
        return self.loader.batch_size

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.start_epoch()
        batches = iter(self.loader)
        skip = self.take_skip()
        if skip:
            from ..engine.checkpoint import capture_rng, restore_rng

            saved = capture_rng()  # the state the interrupted run had after those batches
            for _ in range(skip):
                if next(batches, None) is None:
                    break
            restore_rng(saved)
        yield from batches
