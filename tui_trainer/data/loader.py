"""A loader for datasets that fit in memory: the whole split as tensors on the training device.

Batches are slices of a `randperm` and augmentation runs as batched tensor ops on the same
device (the approach of the fastest CIFAR-10 training code), so there are no worker
processes, no per-image PIL work and, on a GPU, no host-to-device copy per batch.

Randomness comes from one CPU generator, drawn once per epoch; its state at the start of an
epoch plus the number of batches done is enough to resume mid-epoch exactly.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchTransform:
    """Turns stored samples into model inputs: optional random crop (zero padding) and
    horizontal flip, then scaling and per-channel normalisation."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1.0  # 1/255 for uint8 images
    crop_padding: int = 0
    flip: bool = False

    @property
    def random(self) -> bool:
        return self.crop_padding > 0 or self.flip

    def sample_params(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        params: dict[str, torch.Tensor] = {}
        if self.crop_padding:
            params["offsets"] = torch.randint(0, 2 * self.crop_padding + 1, (n, 2), generator=generator)
        if self.flip:
            params["flip"] = torch.rand(n, generator=generator) < 0.5
        return params

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        shift, inv = _norm_constants(self.mean, self.std, self.scale, str(x.device), x.dim())
        # In place on the fresh float copy: the same arithmetic, without two more batch-sized
        # allocations (on the CPU each one page-faults in anew and costs more than the maths).
        x = x.float() if x.dtype != torch.float32 else x.clone()
        return x.sub_(shift).mul_(inv)

    def augment(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        if "offsets" in params:  # the crop mirrors the flipped images as it copies them
            x = random_crop(x, params["offsets"], self.crop_padding, params.get("flip"))
        elif "flip" in params:
            x = torch.where(params["flip"].view(-1, 1, 1, 1), x.flip(3), x)
        return x


@functools.lru_cache(maxsize=16)
def _norm_constants(mean, std, scale, device, ndim):
    """(x - shift) * inv == (x * scale - mean) / std, as tensors made once per device."""
    shape = (1, len(mean)) + (1,) * (ndim - 2)
    shift = torch.tensor([m / scale for m in mean], device=device).view(shape)
    inv = torch.tensor([scale / s for s in std], device=device).view(shape)
    return shift, inv


def random_crop(x: torch.Tensor, offsets: torch.Tensor, padding: int,
                flip: torch.Tensor | None = None) -> torch.Tensor:
    """Crop each image of an NCHW batch at its own (dy, dx) offset from a zero-padded copy,
    mirrored left-right where `flip` (a bool per image) is True.

    One index_select copies whole padded rows, one gather picks each row's columns (in
    reverse order for a mirrored image): no per-image Python loop, and on the CPU several
    times faster than gathering rows element by element and flipping in a separate pass.
    """
    n, c, h, w = x.shape
    height, width = h + 2 * padding, w + 2 * padding
    dev = x.device
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    rows = (torch.arange(n * c, device=dev) * height).view(n, c, 1) + offsets[:, 0].view(n, 1, 1)
    rows = (rows + torch.arange(h, device=dev)).view(-1)
    x = padded.reshape(n * c * height, width).index_select(0, rows).view(n, c, h, width)
    cols = torch.arange(w, device=dev).expand(n, w)
    if flip is not None:
        cols = torch.where(flip.view(n, 1), w - 1 - cols, cols)
    cols = (offsets[:, 1:2] + cols).view(n, 1, 1, w).expand(n, c, h, w)
    return x.gather(3, cols)


def epoch_indices(n: int, generator: torch.Generator, shuffle: bool, rank: int = 0, world_size: int = 1,
                  pad_shards: bool = True) -> torch.Tensor:
    """This rank's sample order for one epoch: a permutation drawn from `generator` (or 0..n-1),
    sharded round-robin over the ranks, padded with repeats to equal lengths when asked."""
    perm = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if world_size > 1:
        if pad_shards:
            total = math.ceil(n / world_size) * world_size
            if total > n:
                perm = torch.cat([perm, perm[: total - n]])
        perm = perm[rank::world_size]
    return perm


def shard_size(n: int, rank: int, world_size: int, pad_shards: bool) -> int:
    """Samples one rank sees per epoch of `n` (epoch_indices' shard: padded to equal shares, or not)."""
    if world_size == 1:
        return n
    if pad_shards:
        return math.ceil(n / world_size)
    return len(range(rank, n, world_size))


class ResumePosition:
    """The resume state of a loader whose order comes from `self.generator`: at an epoch
    boundary (batches_done=0) the generator as it is now; mid-epoch, its state when the epoch
    began (`start_epoch` keeps it), plus how many batches to skip (`take_skip` hands it over once)."""

    generator: torch.Generator
    epoch_start_state: torch.Tensor
    _skip = 0

    def start_epoch(self) -> None:
        self.epoch_start_state = self.generator.get_state()

    def take_skip(self) -> int:
        skip, self._skip = self._skip, 0
        return skip

    def state_dict(self, batches_done: int = 0) -> dict:
        state = self.epoch_start_state if batches_done else self.generator.get_state()
        return {"generator": state.clone(), "skip": int(batches_done)}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._skip = int(state.get("skip", 0))


class _Sized:
    """Stands in for `loader.dataset` where code only asks its length (the seed prints it)."""

    def __init__(self, n: int) -> None:
        self._n = n

    def __len__(self) -> int:
        return self._n


class TensorLoader(ResumePosition):
    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, *,
                 transform: BatchTransform | None = None, shuffle: bool = False, drop_last: bool = False,
                 device: torch.device | str = "cpu", seed: int = 0, rank: int = 0, world_size: int = 1,
                 pad_shards: bool = True) -> None:
        if len(inputs) != len(targets):
            raise ValueError("inputs and targets differ in length")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.pad_shards = pad_shards
        self.transform = transform
        self.targets = targets.to(self.device)
        if transform is not None and not transform.random:
            # Nothing random: normalise once, so a batch is a single gather.
            self.inputs = transform.normalise(inputs.to(self.device))
            self._per_batch = None
        else:
            self.inputs = inputs.to(self.device)
            self._per_batch = transform
        self.generator = torch.Generator().manual_seed(seed)
        self.start_epoch()
        self.dataset = _Sized(len(inputs))

    # ----- sizes -----
    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch."""
        return shard_size(len(self.inputs), self.rank, self.world_size, self.pad_shards)

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    # ----- iteration -----
    def _indices(self) -> torch.Tensor:
        return epoch_indices(len(self.inputs), self.generator, self.shuffle, self.rank, self.world_size,
                             self.pad_shards)

    def __iter__(self):
        self.start_epoch()
        perm = self._indices()
        params = self._per_batch.sample_params(len(perm), self.generator) if self._per_batch is not None else {}
        perm = perm.to(self.device, non_blocking=True)
        params = {k: v.to(self.device, non_blocking=True) for k, v in params.items()}
        skip = self.take_skip()
        bs = self.batch_size
        for b in range(skip, len(self)):
            lo, hi = b * bs, min((b + 1) * bs, len(perm))
            idx = perm[lo:hi]
            x = self.inputs.index_select(0, idx)
            y = self.targets.index_select(0, idx)
            if self._per_batch is not None:
                x = self._per_batch.augment(x, {k: v[lo:hi] for k, v in params.items()})
                x = self._per_batch.normalise(x)
            yield x, y
