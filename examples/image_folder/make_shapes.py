"""Make a folder of images to train on: circles, squares and triangles of random colours, sizes and
places on a noisy background, one folder per class, as PNG files.

    python examples/image_folder/make_shapes.py shapes                  # 200 per class, 32x32
    python examples/image_folder/make_shapes.py shapes --per-class 50 --size 48

Then `tui-trainer run shapes --val-split 0.2` (see README.md next to this file).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")


def draw(shape: str, size: int, rng: random.Random) -> Image.Image:
    background = tuple(rng.randrange(0, 120) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    pixels = image.load()
    for x in range(size):  # a little noise, so no two images are alike
        for y in range(size):
            r, g, b = pixels[x, y]
            n = rng.randrange(-20, 21)
            pixels[x, y] = (max(0, r + n), max(0, g + n), max(0, b + n))
    colour = tuple(rng.randrange(130, 256) for _ in range(3))
    side = rng.randrange(size // 3, size * 3 // 4)
    x0, y0 = rng.randrange(0, size - side), rng.randrange(0, size - side)
    box = (x0, y0, x0 + side, y0 + side)
    pen = ImageDraw.Draw(image)
    if shape == "circle":
        pen.ellipse(box, fill=colour)
    elif shape == "square":
        pen.rectangle(box, fill=colour)
    else:
        pen.polygon([(x0 + side / 2, y0), (x0, y0 + side), (x0 + side, y0 + side)], fill=colour)
    return image


def make(folder: Path, per_class: int = 200, size: int = 32, seed: int = 0) -> int:
    rng = random.Random(seed)
    for shape in CLASSES:
        (folder / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(shape, size, rng).save(folder / shape / f"{i:04d}.png")
    return per_class * len(CLASSES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    count = make(args.folder, args.per_class, args.size, args.seed)
    print(f"wrote {count} images to {args.folder}/{{{','.join(CLASSES)}}}/")
    print(f"train on them: tui-trainer run {args.folder} --val-split 0.2")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
