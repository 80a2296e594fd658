"""A folder of the user's images, read without torch: which classes, which files, which split.

Two layouts:
  FOLDER/train/<class>/...  and  FOLDER/val/<class>/...      (the split is the user's)
  FOLDER/<class>/...  (or FOLDER/train/<class>/... alone) with --val-split F
                                   (F of each class held out, chosen by --seed: stratified, fixed)
Class folders are searched recursively; files are sorted, so the order (and with the seed, the
split) is the same in every run. A resume checks that the file list is still the one recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm",
                              ".pbm"})
LAYOUTS = ("FOLDER/train/<class>/*.jpg with FOLDER/val/<class>/..., or FOLDER/<class>/*.jpg with --val-split 0.1")
RECORD_KEY = "image_folder"  # where config.extra keeps the file list's digest


@dataclass(frozen=True)
class Layout:
    root: Path
    classes: tuple[str, ...]
    train: tuple[tuple[str, int], ...]  # (path relative to root, class index), sorted
    val: tuple[tuple[str, int], ...]
    how: str  # how the validation split was made, for the log

    @property
    def files(self) -> tuple[str, ...]:
        """Every image once, sorted: the decoded cache's order."""
        return tuple(sorted({path for path, _ in self.train + self.val}))

    def digest(self) -> str:
        text = json.dumps([self.classes, self.train, self.val], separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def record(self) -> dict:
        return {"digest": self.digest(), "classes": len(self.classes), "train": len(self.train), "val": len(self.val)}


def _listdir(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise UserError(f"cannot read {folder}: {exc.strerror or exc}; check that it is a folder you can read") from None


def _images_under(folder: Path, root: Path) -> list[str]:
    """Image files below `folder`, as POSIX paths relative to `root` (plain strings: a pathlib
    object per file costs more than listing the folder)."""
    found = []
    prefix = os.path.relpath(folder, root).replace(os.sep, "/")
    for entry in _listdir(folder):
        if entry.is_dir():
            found += _images_under(Path(entry.path), root)
        elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
            found.append(entry.name if prefix == "." else f"{prefix}/{entry.name}")
    return found


def _class_tree(folder: Path, root: Path) -> dict[str, list[str]]:
    """{class: sorted image paths}, for each subfolder that holds at least one image."""
    tree = {}
    for entry in _listdir(folder):
        if entry.is_dir():
            images = _images_under(Path(entry.path), root)
            if images:
                tree[entry.name] = images
    return tree


def _check_classes(tree: dict, where: Path) -> None:
    if not tree:
        loose = [e for e in _listdir(where) if Path(e.name).suffix.lower() in IMAGE_EXTENSIONS]
        what = "images but no class folders" if loose else "no images in class folders"
        raise UserError(f"{where} holds {what}; arrange it as {LAYOUTS} "
                        f"(image files: {', '.join(sorted(IMAGE_EXTENSIONS))})")
    if len(tree) == 1:
        raise UserError(f"{where} has one class ({next(iter(tree))}): a classifier needs at least two class folders")


def split(tree: dict[str, list[str]], fraction: float, seed: int):
    """Hold out `fraction` of each class (at least one image of a class with two or more),
    chosen by `seed`: the same files in every run with that seed."""
    rng = random.Random(seed)
    train, val = [], []
    for label, name in enumerate(sorted(tree)):
        files = tree[name]
        order = list(range(len(files)))
        rng.shuffle(order)
        held = 0 if len(files) < 2 else min(len(files) - 1, max(1, round(len(files) * fraction)))
        chosen = set(order[:held])
        train += [(f, label) for i, f in enumerate(files) if i not in chosen]
        val += [(f, label) for i, f in enumerate(files) if i in chosen]
    return tuple(train), tuple(val)


def scan(config) -> Layout:
    root = Path(config.dataset)
    if not root.is_dir():
        raise UserError(f"{root} does not exist or is not a folder; give a folder of images: {LAYOUTS}")
    _listdir(root)  # unreadable: one line
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir():
        tree = _class_tree(train_dir, root)
        _check_classes(tree, train_dir)
        classes = tuple(sorted(tree))
        if val_dir.is_dir():
            if config.val_split is not None:
                raise UserError(f"{root} has a val/ folder, so there is nothing to split: drop --val-split, or "
                                "remove val/ to split train/")
            val_tree = _class_tree(val_dir, root)
            extra = sorted(set(val_tree) - set(classes))
            if extra:
                raise UserError(f"{val_dir} has class folders that {train_dir} lacks ({', '.join(extra[:5])}); "
                                "give each validation class training images too")
            if not val_tree:
                raise UserError(f"{val_dir} holds no images in class folders; add val/<class>/... images, or remove "
                                "val/ and pass --val-split 0.1")
            train = tuple((f, classes.index(c)) for c in classes for f in tree[c])
            val = tuple((f, classes.index(c)) for c in sorted(val_tree) for f in val_tree[c])
            return Layout(root, classes, train, val, "train/ and val/")
        if config.val_split is None:
            raise UserError(f"{root} has train/ but no val/; add {root}/val/<class>/... images, or pass --val-split "
                            "0.1 to hold out part of each class")
    else:
        tree = _class_tree(root, root)
        _check_classes(tree, root)
        classes = tuple(sorted(tree))
        if config.val_split is None:
            raise UserError(f"{root} has no train/ and val/ folders; pass --val-split 0.1 to hold out part of each "
                            f"class, or arrange it as FOLDER/train/<class>/... and FOLDER/val/<class>/...")
    seed = config.seed or 0
    train, val = split(tree, config.val_split, seed)
    if not val:
        raise UserError(f"--val-split {config.val_split:g} holds out no image (each class has fewer than two); "
                        "add images, or give a val/ folder")
    return Layout(root, classes, train, val, f"{config.val_split:.0%} of each class held out (seed {seed})")


def preflight(config):
    """Scan the folder (UserError for an empty, single-class or unreadable one) and record its
    file list in the config; a config that recorded one (a resume) must still match it."""
    layout = scan(config)
    recorded = (config.extra or {}).get(RECORD_KEY)
    if isinstance(recorded, dict):
        check_unchanged(layout, recorded)
        return config
    return config.replace(extra={**(config.extra or {}), RECORD_KEY: layout.record()})


def check_unchanged(layout: Layout, recorded: dict) -> None:
    if recorded.get("digest") != layout.digest():
        then = f"{recorded.get('train')} training / {recorded.get('val')} validation images"
        now = f"{len(layout.train)} / {len(layout.val)}"
        raise UserError(f"the images in {layout.root} changed since this run started ({then} then, {now} now): "
                        "the split and order would differ; put the folder back as it was, or start a new run")


def image_sizes(root: Path, files, workers: int = 8) -> list[tuple[int, int] | None]:
    """(height, width) of each file from its header (PIL reads no pixels); None when unreadable."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    def sizes(chunk):  # a chunk a task: a future per file would cost more than reading its header
        out = []
        for rel in chunk:
            try:
                with Image.open(os.path.join(root, rel)) as im:
                    out.append((im.size[1], im.size[0]))
            except Exception:  # noqa: BLE001 - any unreadable or unknown file is skipped and counted
                out.append(None)
        return out

    files = list(files)
    chunks = [files[i:i + 256] for i in range(0, len(files), 256)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [size for part in pool.map(sizes, chunks) for size in part]


DEFAULT_SIDE = 224


def target_size(config, sizes) -> tuple[int, int]:
    """--image-size as a square, else the images' own size when they all share it, else 224."""
    if config.image_size:
        return config.image_size, config.image_size
    known = {s for s in sizes if s is not None}
    return next(iter(known)) if len(known) == 1 else (DEFAULT_SIDE, DEFAULT_SIDE)


def sample_shape(config) -> tuple[tuple[int, int, int], int]:
    layout = scan(config)
    if config.image_size:
        return (3, config.image_size, config.image_size), len(layout.classes)
    height, width = target_size(config, image_sizes(layout.root, layout.files))
    return (3, height, width), len(layout.classes)
