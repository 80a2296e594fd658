"""Data path: our in-memory tensor loader vs torchvision's DataLoader with PIL transforms.

    python benchmarks/data_path.py                # 10,000 CIFAR-shaped images (about a minute)
    python benchmarks/data_path.py --images 50000 # a full CIFAR-10 training epoch
    python benchmarks/data_path.py --quick        # seconds; checks the script works
    python benchmarks/data_path.py --only-folder  # just the image-folder rows (10,000 PNGs)

Both sides produce the same thing from the same uint8 images: shuffled batches of 128
float32 images (N, 3, 32, 32), randomly cropped from a 4-pixel zero-padded copy, randomly
flipped, scaled to [0, 1] and normalised with CIFAR-10's mean and std, plus int64 labels.

  ours         TensorLoader + BatchTransform(crop_padding=4, flip=True) on the CPU: the
               whole split as one uint8 tensor, batches sliced from a randperm, crop, flip
               and normalisation as batched tensor ops (torch's intra-op threads).
  torchvision  torchvision.datasets.CIFAR10 reading the images from files in the real
               CIFAR-10 python format (generated here; the archive's checksums are skipped
               because the files are not the original ones), transforms
               RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(), Normalize(),
               DataLoader(batch_size=128, shuffle=True, num_workers=2,
               persistent_workers=True): the workers are started before timing begins.

A second table compares the image-folder path (`tui-trainer run FOLDER`) with torchvision's
ImageFolder + PIL + DataLoader on a folder of small PNGs: see _image_folder.py.

Trials alternate the order of the sides; each trial is one full pass over the images. Target:
ours >= 10x torchvision's samples/s, with torch's default number of intra-op threads. A third
row runs ours with one intra-op thread (each torchvision worker also uses one): on a machine
that other processes keep busy, a team of OpenMP threads stalls whenever one is descheduled.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time

from _common import (ensure_repo_importable, interleave, load_average, machine_line, median, paired_ratios,
                     table, usable_cores, verdict)

ensure_repo_importable()

TARGET = 10.0
BATCH = 128
MEAN = (0.4914, 0.4822, 0.4465)  # the seed's CIFAR-10 normalisation, as tui_trainer.data.cifar10 uses
STD = (0.2023, 0.1994, 0.2010)


def write_cifar_files(root: str, images, labels, test_images, test_labels) -> None:
    """The CIFAR-10 python format: cifar-10-batches-py/data_batch_{1..5}, test_batch and
    batches.meta, each a pickled dict; images as (n, 3072) uint8 rows (R, G, B planes)."""
    import numpy as np

    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    flat = images.reshape(len(images), -1).numpy()
    for i, part in enumerate(np.array_split(np.arange(len(flat)), 5), start=1):
        batch = {"batch_label": f"training batch {i} of 5", "labels": labels[part].tolist(),
                 "data": flat[part], "filenames": [f"img_{j}.png" for j in part]}
        with open(os.path.join(folder, f"data_batch_{i}"), "wb") as fh:
            pickle.dump(batch, fh)
    test = {"batch_label": "testing batch 1 of 1", "labels": test_labels.tolist(),
            "data": test_images.reshape(len(test_images), -1).numpy(),
            "filenames": [f"test_{j}.png" for j in range(len(test_images))]}
    with open(os.path.join(folder, "test_batch"), "wb") as fh:
        pickle.dump(test, fh)
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                            "truck"], "num_cases_per_batch": len(flat) // 5, "num_vis": 3072}
    with open(os.path.join(folder, "batches.meta"), "wb") as fh:
        pickle.dump(meta, fh)


def generated_cifar10_class():
    from torchvision.datasets import CIFAR10

    class GeneratedCIFAR10(CIFAR10):
        """torchvision's CIFAR10, unchanged but for the MD5 checks of the original archive."""

        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as fh:
                self.classes = pickle.load(fh, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return GeneratedCIFAR10


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, help="training images per pass (default 10000; quick 512)")
    p.add_argument("--trials", type=int, help="interleaved passes per side (default 5; quick 1)")
    p.add_argument("--workers", type=int, default=2, help="torchvision DataLoader workers (default 2)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, measures nothing")
    p.add_argument("--folder-images", type=int, help="PNGs in the image-folder comparison (default 10000; quick 300)")
    p.add_argument("--only-folder", action="store_true", help="run only the image-folder comparison")
    args = p.parse_args(argv)
    if args.only_folder:
        return folder_table(args)
    n = args.images or (512 if args.quick else 10_000)
    trials = args.trials or (1 if args.quick else 5)

    import torch
    from torch.utils.data import DataLoader
    from torchvision import transforms

    from tui_trainer.data.loader import BatchTransform, TensorLoader
    from tui_trainer.data.synthetic import make_tensors

    load_before = load_average()
    gen = torch.Generator().manual_seed(0)
    images, labels = make_tensors((3, 32, 32), 10, n, gen)
    test_images, test_labels = make_tensors((3, 32, 32), 10, 100, gen)

    ours = TensorLoader(images, labels, BATCH, shuffle=True, device="cpu", seed=0,
                        transform=BatchTransform(mean=MEAN, std=STD, scale=1 / 255, crop_padding=4, flip=True))

    tmp = tempfile.TemporaryDirectory(prefix="data-path-")
    write_cifar_files(tmp.name, images, labels, test_images, test_labels)
    dataset = generated_cifar10_class()(tmp.name, train=True, transform=transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(MEAN, STD)]))
    assert len(dataset) == n and (torch.from_numpy(dataset.data[0]).permute(2, 0, 1) == images[0]).all()
    theirs = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0)

    def one_pass(loader):
        def run() -> float:
            t0 = time.perf_counter()
            count = 0
            for x, y in loader:
                count += len(y)
            elapsed = time.perf_counter() - t0
            assert count == n
            return elapsed
        return run

    # Same output either way: check it once, untimed (this also starts torchvision's workers).
    xa, ya = next(iter(ours))
    xb, yb = next(iter(theirs))
    assert xa.shape == xb.shape and xa.dtype == xb.dtype == torch.float32 and ya.dtype == yb.dtype
    one_pass(ours)(), one_pass(theirs)()

    def single_threaded(run):
        def wrapped() -> float:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return run()
            finally:
                torch.set_num_threads(threads)
        return wrapped

    threads = torch.get_num_threads()
    sides = {"ours": one_pass(ours), "torchvision": one_pass(theirs)}
    if threads > 1:
        sides["ours, 1 thread"] = single_threaded(one_pass(ours))
    results = interleave(trials, sides)
    print(f"data path: CIFAR-shaped uint8 images -> augmented, normalised float batches of {BATCH} "
          f"({n:,} images a pass, median of {trials} interleaved passes"
          f"{'; QUICK: tiny sizes, not a measurement' if args.quick else ''})")
    print(machine_line())
    labels = {
        "ours": f"ours: TensorLoader, batched crop+flip+normalise, {threads} intra-op threads",
        "ours, 1 thread": "ours: the same with 1 intra-op thread",
        "torchvision": f"torchvision: CIFAR10 + PIL transforms, DataLoader num_workers={args.workers}",
    }
    rows = []
    for name, times in results.items():
        ratios = paired_ratios(results["torchvision"], times)
        rows.append([labels[name], f"{median([n / t for t in times]):,.0f}", f"{median(times):.3f}",
                     f"{median(ratios):.1f}x" if name != "torchvision" else "1.0x",
                     f"{min(ratios):.1f}-{max(ratios):.1f}x" if name != "torchvision" else ""])
    print(table(["loader", "samples/s", "s/pass", "vs torchvision", "trial range"], rows))
    ratio = median(paired_ratios(results["torchvision"], results["ours"]))
    print(f"ratio ours/torchvision: {ratio:.1f}x, target >= {TARGET:g}x: "
          f"{'quick: not judged' if args.quick else verdict(ratio, TARGET)}")
    load_after = load_average()
    print(f"(1-minute load average {load_before} before, {load_after} after, on {usable_cores()} cores)")
    if max(float(load_before), float(load_after)) > usable_cores():
        print("note: other processes kept more than every core busy: torch's intra-op threads wait on each "
              "other when the OS deschedules one, so the multi-threaded figures suffer most")
    del theirs
    tmp.cleanup()
    return folder_table(args)


def folder_table(args) -> int:
    import _image_folder

    load_before = load_average()
    n = args.folder_images or (300 if args.quick else 10_000)
    print()
    print(_image_folder.run(n, 1 if args.quick else 3, args.workers))
    print(f"(1-minute load average {load_before} before, {load_average()} after, on {usable_cores()} cores"
          f"{'; QUICK: tiny sizes, not a measurement' if args.quick else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
