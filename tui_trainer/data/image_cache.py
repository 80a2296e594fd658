"""Decoding an image folder once, and keeping the result so the next run starts fast.

Every image is decoded (threads; torchvision.io, PIL for the rest), resized to the run's size,
and its per-channel sums kept (the training split's mean and std follow from them exactly for
any split). Unreadable files are skipped and counted. When the images fit the memory budget the
pixels are kept too; otherwise only which files are readable.

The cache lives in DATA_DIR/image-cache/, one file per folder and size, written to a temporary
file and renamed into place. It is keyed by the file list, each file's size and mtime, and the
requested size, and holds no pickle: a JSON header, then raw float64 sums and uint8 pixels, each
with its BLAKE2 digest. A cache that fails any check (key, lists, shapes, length, digests) is
not used: the images are decoded again, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import events as ev
from .folder_scan import Layout, image_sizes, target_size

VERSION = 1
MAGIC = b"tui-trainer image cache\n"
MAX_HEADER = 512 * 1024 * 1024
DECODE_CHUNK = 64  # files per decoding task


@dataclass
class Decoded:
    kept: list[str]  # readable files, in the layout's file order
    skipped: list[str]
    size: tuple[int, int]  # (height, width) of every kept image
    sums: torch.Tensor  # (len(kept), 2, 3) float64: per image and channel, sum of values and of squares
    images: torch.Tensor | None  # (len(kept), 3, H, W) uint8, or None when only the list was kept
    from_cache: bool = False


def decode_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def cache_path(config, layout: Layout) -> Path:
    name = hashlib.sha256(f"{layout.root}\0{config.image_size}".encode()).hexdigest()[:20]
    return config.resolved_data_dir / "image-cache" / f"{name}.bin"


def cache_key(config, layout: Layout) -> str:
    stats = []
    for rel in layout.files:
        try:
            st = os.stat(layout.root / rel)
            stats.append((rel, st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((rel, -1, -1))
    text = json.dumps([VERSION, str(layout.root), config.image_size, stats], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest(data) -> str:
    return hashlib.blake2b(memoryview(data).cast("B"), digest_size=16).hexdigest()


def read_cache(path: Path, key: str, files: tuple[str, ...], want_pixels: bool) -> tuple[Decoded | None, str]:
    """(the cache, "") when it is valid and has what is wanted; (None, why) otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"cannot open it: {exc.strerror or exc}"
    with os.fdopen(fd, "rb") as fh:
        try:
            return _parse(fh, os.fstat(fh.fileno()).st_size, key, files, want_pixels)
        except (OSError, ValueError, KeyError, TypeError, RecursionError, struct.error) as exc:
            return None, f"damaged: {str(exc)[:120] or type(exc).__name__}"


def _parse(fh, total: int, key: str, files, want_pixels: bool):
    if fh.read(len(MAGIC)) != MAGIC:
        raise ValueError("not an image cache")
    (length,) = struct.unpack("<Q", fh.read(8))
    if length > min(MAX_HEADER, total):
        raise ValueError("header too long")
    header = json.loads(fh.read(length).decode("utf-8"))
    if not isinstance(header, dict) or header.get("version") != VERSION:
        raise ValueError("another version")
    if header.get("key") != key:
        return None, ""  # the folder or the size changed: a new cache, no warning
    kept, skipped, size = header["kept"], header["skipped"], header["size"]
    if (not isinstance(kept, list) or not isinstance(skipped, list) or not all(isinstance(f, str) for f in kept + skipped)
            or sorted(kept + skipped) != sorted(files) or len(set(kept)) != len(kept)):
        raise ValueError("its file lists do not match the folder")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and 0 < v <= 65536 for v in size)):
        raise ValueError("bad image size")
    has_pixels = header.get("pixels") is True
    n, (h, w) = len(kept), size
    sums_bytes, pixel_bytes = n * 2 * 3 * 8, (n * 3 * h * w if has_pixels else 0)
    if total != len(MAGIC) + 8 + length + sums_bytes + pixel_bytes:
        raise ValueError("its length does not match its header")
    if want_pixels and not has_pixels:
        return None, ""  # made for streaming; now it fits in memory: decode and keep the pixels
    sums = np.empty(n * 6, dtype=np.float64)
    fh.readinto(memoryview(sums).cast("B"))
    if _digest(sums) != header.get("sums_digest"):
        raise ValueError("sums digest mismatch")
    images = None
    if want_pixels:
        pixels = np.empty(pixel_bytes, dtype=np.uint8)
        fh.readinto(memoryview(pixels))
        if _digest(pixels) != header.get("pixels_digest"):
            raise ValueError("pixel digest mismatch")
        images = torch.from_numpy(pixels).view(n, 3, h, w)
    decoded = Decoded(kept, skipped, (h, w), torch.from_numpy(sums).view(n, 2, 3), images, from_cache=True)
    return decoded, ""


def write_cache(path: Path, key: str, decoded: Decoded) -> str:
    """Atomically; returns "" or why it could not (the run goes on without a cache)."""
    sums = decoded.sums.contiguous().numpy()
    pixels = decoded.images.contiguous().numpy() if decoded.images is not None else None
    header = json.dumps({"version": VERSION, "key": key, "kept": decoded.kept, "skipped": decoded.skipped,
                         "size": list(decoded.size), "pixels": pixels is not None, "sums_digest": _digest(sums),
                         "pixels_digest": _digest(pixels) if pixels is not None else ""}).encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + struct.pack("<Q", len(header)) + header)
            fh.write(memoryview(sums).cast("B"))
            if pixels is not None:
                fh.write(memoryview(pixels).cast("B"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return ""
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return f"{exc.strerror or exc}"


def decode_all(layout: Layout, size: tuple[int, int], keep_pixels: bool, emit, skip=frozenset()) -> Decoded:
    from .image_decode import decode

    files = layout.files
    n, (h, w) = len(files), size
    images = torch.empty((n, 3, h, w), dtype=torch.uint8) if keep_pixels else None
    sums = torch.zeros((n, 2, 3), dtype=torch.float64)
    readable = [False] * n

    def work(chunk: range) -> int:  # a chunk of files a task: a future per image costs more than a small PNG
        for i in chunk:
            if files[i] in skip:
                continue
            try:
                image = decode(layout.root / files[i], size)
            except Exception:  # noqa: BLE001 - an unreadable or corrupt file is skipped and counted
                continue
            if images is not None:
                images[i].copy_(image)
            flat = image.flatten(1).to(torch.float64)
            sums[i, 0], sums[i, 1] = flat.sum(1), (flat * flat).sum(1)
            readable[i] = True
        return len(chunk)

    chunks = [range(lo, min(lo + DECODE_CHUNK, n)) for lo in range(0, n, DECODE_CHUNK)]
    last, done = time.monotonic(), 0
    with ThreadPoolExecutor(max_workers=decode_workers()) as pool:
        for future in as_completed([pool.submit(work, chunk) for chunk in chunks]):
            done += future.result()
            if time.monotonic() - last > 1.0:
                last = time.monotonic()
                emit(ev.Preparing(stage="decoding images", detail=f"{done:,} of {n:,}"))
    rows = [i for i in range(n) if readable[i]]
    index = torch.tensor(rows, dtype=torch.int64)
    return Decoded([files[i] for i in rows], [files[i] for i in range(n) if not readable[i]], (h, w),
                   sums.index_select(0, index), images.index_select(0, index) if images is not None else None)


def prepare(layout: Layout, config, fits, emit) -> Decoded:
    """The folder's images decoded at the run's size, from the cache when it is valid.
    fits(size) -> bool: whether images of that size are held in memory (else streamed)."""
    key, path = cache_key(config, layout), cache_path(config, layout)
    size, skip = None, frozenset()
    if config.image_size:
        size = (config.image_size, config.image_size)
    cached, problem = read_cache(path, key, layout.files, want_pixels=False)
    if cached is not None:
        size = cached.size
        if not fits(size):
            return cached
        with_pixels, problem = read_cache(path, key, layout.files, want_pixels=True)
        if with_pixels is not None:
            return with_pixels
    if problem:
        emit(ev.Notice(level="warning", message=f"the image cache {path} was not used ({problem}); "
                                                "decoding the images again"))
    if size is None:
        emit(ev.Preparing(stage="reading image sizes", detail=f"{len(layout.files):,} files"))
        sizes = image_sizes(layout.root, layout.files, decode_workers())
        size = target_size(config, sizes)
        skip = frozenset(f for f, s in zip(layout.files, sizes) if s is None)
    emit(ev.Preparing(stage="decoding images", detail=f"{len(layout.files):,} files at {size[0]}x{size[1]}"))
    decoded = decode_all(layout, size, fits(size), emit, skip)
    problem = write_cache(path, key, decoded)
    if problem:
        emit(ev.Notice(level="warning", message=f"could not write the image cache {path} ({problem}); the next run "
                                                "decodes the images again"))
    return decoded
