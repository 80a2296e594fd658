"""The image-folder row of data_path.py: a folder of small PNGs (train/<class>/ and val/<class>/),
our path against torchvision's ImageFolder + PIL + DataLoader.

  ours, first epoch   `build_data` on a fresh data dir: scan the folder, read the image sizes,
                      decode every image (train and val) with torchvision.io in threads, write
                      the decoded cache, then one pass over the training batches (TensorLoader,
                      crop + flip + normalise as batched tensor ops)
  ours, cached start  the same with the cache of the first run in place: the second run's start
                      (cache read and checked) plus one pass
  ours, later epochs  one pass of the TensorLoader already built
  torchvision         ImageFolder(train/) with RandomCrop(32, padding=4), RandomHorizontalFlip(),
                      ToTensor(), Normalize(); DataLoader(batch_size=128, shuffle=True,
                      num_workers=2, persistent_workers=True), workers started before timing;
                      one pass (it decodes every image every epoch)

Every side yields the same batches: float32 (128, 3, 32, 32) and int64 labels. Our side runs
with one intra-op thread (torchvision's workers use one each): on a 2-core machine that other
processes keep busy, two OpenMP threads stall each other and a TensorLoader pass measured 0.5-3 s
instead of 0.02 s (see the README's "Threads").
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from _common import interleave, median, table

BATCH = 128


def write_pngs(root: str, n_train: int, n_val: int, classes: int = 10) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            c = i % classes
            folder = os.path.join(root, split, f"class{c}")
            os.makedirs(folder, exist_ok=True)
            pixels = np.clip(rng.normal(40 + 18 * c, 50, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(folder, f"{i:05d}.png"))


def run(n: int, trials: int, workers: int) -> str:
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from tui_trainer.config import make_config
    from tui_trainer.data import build_data, preflight

    tmp = tempfile.mkdtemp(prefix="image-folder-bench-")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        write_pngs(os.path.join(tmp, "pics"), n, max(n // 20, 20))
        made = time.perf_counter() - t0
        root = os.path.join(tmp, "pics")

        def config(data_dir):
            return preflight(make_config(root, data_dir=data_dir, batch_size=BATCH, model="simplecnn"))

        def one_pass(loader) -> int:
            count = 0
            for x, y in loader:
                count += len(y)
            assert x.dtype == torch.float32 and tuple(x.shape[1:]) == (3, 32, 32)
            return count

        fresh = [0]

        def first_epoch() -> float:
            fresh[0] += 1
            data_dir = os.path.join(tmp, f"data-{fresh[0]}")
            t = time.perf_counter()
            bundle = build_data(config(data_dir), "cpu")
            assert one_pass(bundle.train_loader) == n
            elapsed = time.perf_counter() - t
            shutil.rmtree(data_dir)
            return elapsed

        warm_dir = os.path.join(tmp, "data-warm")
        kept = build_data(config(warm_dir), "cpu")  # also writes the cache the cached start reads

        def cached_start() -> float:
            t = time.perf_counter()
            bundle = build_data(config(warm_dir), "cpu")
            assert one_pass(bundle.train_loader) == n
            return time.perf_counter() - t

        def later_epoch() -> float:
            t = time.perf_counter()
            assert one_pass(kept.train_loader) == n
            return time.perf_counter() - t

        mean, std = kept.train_loader.transform.mean, kept.train_loader.transform.std
        theirs = DataLoader(datasets.ImageFolder(os.path.join(root, "train"), transform=transforms.Compose([
            transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
            transforms.Normalize(mean, std)])), batch_size=BATCH, shuffle=True, num_workers=workers,
            persistent_workers=workers > 0)
        one_pass(theirs)  # starts the workers, untimed

        def torchvision_epoch() -> float:
            t = time.perf_counter()
            assert one_pass(theirs) == n
            return time.perf_counter() - t

        results = interleave(trials, {"first": first_epoch, "cached": cached_start, "later": later_epoch,
                                      "torchvision": torchvision_epoch})
        base = median(results["torchvision"])
        labels = {"first": "ours, first epoch (scan, decode, cache, 1 pass)",
                  "cached": "ours, second run: cached start + 1 pass",
                  "later": "ours, later epochs (TensorLoader pass)",
                  "torchvision": f"torchvision ImageFolder + PIL, DataLoader num_workers={workers}"}
        rows = [[labels[k], f"{n / median(v):,.0f}", f"{median(v):.3f}", f"{base / median(v):.1f}x",
                 f"{min(v):.3f}-{max(v):.3f}"] for k, v in results.items()]
        head = (f"image folder: {n:,} PNGs of 32x32 in train/ ({max(n // 20, 20):,} in val/, 10 classes; written in "
                f"{made:.1f}s), batches of {BATCH}, median of {trials} interleaved trials")
        return head + "\n" + table(["path", "samples/s", "s/epoch", "vs torchvision", "range (s)"], rows)
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(tmp, ignore_errors=True)
