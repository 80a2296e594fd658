"""`tui-trainer run path/to/folder`: the user's own images as a dataset.

The layout and split come from folder_scan (torch-free), the decoded images from image_cache.
When they fit the memory budget they are held on the training device as uint8 and batched like
CIFAR-10 (TensorLoader); otherwise DataLoader workers decode them from disk each epoch
(StreamingLoader). Either way augmentation - a random crop (padding 1/8 of the side) and a
left-right flip - runs on the device as batched tensor ops, and the inputs are normalised with
the mean and std of the training split.

Memory budget (--memory-budget GB): by default the smaller of 8 GB and half the memory
available now, and on a GPU also at most a quarter of its memory. What is counted: the training
images as uint8 plus the validation images as float32 (normalised once).
"""

from __future__ import annotations

import math

from .. import events as ev
from ..errors import UserError
from . import DataBundle, folder_scan

MAX_DEFAULT_BUDGET = 8e9
NAMED_SKIPS = 3  # unreadable files named in the warning


def preflight(config):
    return folder_scan.preflight(config)


def sample_shape(config):
    return folder_scan.sample_shape(config)


def memory_budget(config, device) -> float:
    """Bytes the decoded images may take on the training device."""
    if config.memory_budget:
        return config.memory_budget * 1e9
    from .synthetic import available_memory

    budget = min(MAX_DEFAULT_BUDGET, (available_memory() or 2 * MAX_DEFAULT_BUDGET) / 2)
    if device.type == "cuda":
        import torch

        budget = min(budget, torch.cuda.get_device_properties(device).total_memory / 4)
    return budget


def _held_bytes(layout, size) -> int:
    pixels = 3 * size[0] * size[1]
    return len(layout.train) * pixels + len(layout.val) * pixels * 4


def _gb(n: float) -> str:
    return f"{n / 1e9:,.2f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def build(config, device, rank: int = 0, world_size: int = 1, emit=None) -> DataBundle:
    import torch

    from .image_cache import prepare

    emit = emit or (lambda event: None)
    device = torch.device(device)
    layout = folder_scan.scan(config)
    recorded = (config.extra or {}).get(folder_scan.RECORD_KEY)
    if isinstance(recorded, dict):
        folder_scan.check_unchanged(layout, recorded)
    budget = memory_budget(config, device)
    decoded = prepare(layout, config, lambda size: _held_bytes(layout, size) <= budget, emit)
    total = len(decoded.kept) + len(decoded.skipped)
    if decoded.skipped:
        named = ", ".join(decoded.skipped[:NAMED_SKIPS]) + (", ..." if len(decoded.skipped) > NAMED_SKIPS else "")
        emit(ev.Notice(level="warning", message=f"skipped {len(decoded.skipped):,} unreadable image"
                                                f"{'s' if len(decoded.skipped) != 1 else ''} of {total:,} in "
                                                f"{layout.root}: {named}"))
    row = {path: i for i, path in enumerate(decoded.kept)}
    train = [(row[p], label) for p, label in layout.train if p in row]
    val = [(row[p], label) for p, label in layout.val if p in row]
    if not train or not val:
        raise UserError(f"no readable {'training' if not train else 'validation'} images in {layout.root} "
                        f"({len(decoded.skipped):,} of {total:,} files could not be decoded)")
    train_rows = torch.tensor([r for r, _ in train])
    mean, std = _statistics(decoded.sums.index_select(0, train_rows), decoded.size)
    (h, w), seed = decoded.size, config.seed or 0
    from .loader import BatchTransform

    norm = dict(mean=mean, std=std, scale=1 / 255)
    padding = max(1, round(min(h, w) / 8)) if config.augment else 0
    train_tf = BatchTransform(**norm, crop_padding=padding, flip=config.augment)
    val_tf = BatchTransform(**norm)
    held = decoded.images is not None
    where = (f"held on {device} as uint8 ({_gb(_held_bytes(layout, decoded.size))}, memory budget {_gb(budget)})"
             if held else f"streamed from disk ({_gb(_held_bytes(layout, decoded.size))} exceeds the memory budget "
                          f"{_gb(budget)})")
    source = "from the decoded cache" if decoded.from_cache else "decoded"
    emit(ev.Notice(level="info", message=f"{layout.root.name}: {len(train):,} train / {len(val):,} validation images "
                                         f"of 3x{h}x{w}, {len(layout.classes)} classes ({layout.how}); {source}, {where}"))
    if held:
        from .loader import TensorLoader

        def split(pairs):
            rows = torch.tensor([r for r, _ in pairs])
            return decoded.images.index_select(0, rows), torch.tensor([label for _, label in pairs])

        (x_train, y_train), (x_val, y_val) = split(train), split(val)
        train_loader = TensorLoader(x_train, y_train, config.batch_size, transform=train_tf, shuffle=True,
                                    device=device, seed=seed, rank=rank, world_size=world_size)
        val_loader = TensorLoader(x_val, y_val, config.eval_batch_size, transform=val_tf, device=device, rank=rank,
                                  world_size=world_size, pad_shards=False)
    else:
        from .streaming import FolderImages, StreamingLoader

        def images(pairs):
            return FolderImages(layout.root, [decoded.kept[r] for r, _ in pairs], [label for _, label in pairs],
                                decoded.size)

        workers = config.workers if config.workers is not None else min(8, _cores())
        train_loader = StreamingLoader(images(train), config.batch_size, transform=train_tf, shuffle=True,
                                       device=device, seed=seed, rank=rank, world_size=world_size, workers=workers)
        val_loader = StreamingLoader(images(val), config.eval_batch_size, transform=val_tf, device=device, rank=rank,
                                     world_size=world_size, pad_shards=False, workers=workers)
    return DataBundle(config.dataset, train_loader, val_loader, len(layout.classes), layout.classes, (3, h, w))


def _statistics(sums, size) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the training images, in [0, 1] units."""
    count = sums.shape[0] * size[0] * size[1]
    total, squares = sums[:, 0].sum(0) / count / 255, sums[:, 1].sum(0) / count / 255 ** 2
    mean = tuple(float(v) for v in total)
    std = tuple(max(math.sqrt(max(float(s) - float(m) ** 2, 0.0)), 1e-3) for s, m in zip(squares, total))
    return mean, std


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
