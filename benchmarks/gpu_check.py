"""GPU check: SimpleCNN on CIFAR-10-shaped data, one table of epoch times.

    bash benchmarks/gpu_check.sh                        # on a CUDA GPU, under 8 minutes
    bash benchmarks/gpu_check.sh --device cpu --quick   # the same code paths, tiny, on the CPU

Every row trains a fresh SimpleCNN (same initial weights) with AdamW (lr 1e-3, wd 0.01),
batch 128, gradient clipping at 1.0, on the same CIFAR-shaped uint8 images (random crop with
4-pixel padding, horizontal flip, CIFAR-10 normalisation), for one warm-up epoch (which
includes any torch.compile work) and then timed epochs; the table gives the median timed
training epoch (validation excluded) and the peak GPU memory allocated during the row.

  data     torchvision: CIFAR10 from files in the real format + PIL transforms, DataLoader
           with worker processes and pinned memory, batches copied with non_blocking=True.
           ours: TensorLoader, the whole split as a uint8 tensor on the GPU, batches sliced
           from a device randperm, crop/flip/normalise as batched GPU ops.
  loop     plain: the hand-written loop (forward, loss, zero_grad, backward, clip, step).
           engine: Trainer.fit (no checkpoints, no console), timed from outside by its events.
  prec     fp32, or bf16 autocast.    layout: NCHW or channels_last.    compile: torch.compile.

The two "data only" rows time a pass over each loader with no model at all: the most
samples/s that loader can feed. Rows run in order of importance and stop when the time
budget (--budget-s) is spent, so the table always prints.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass

from _common import ensure_repo_importable, machine_line, median, table

ensure_repo_importable()

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
CLIP = 1.0


@dataclass(frozen=True)
class Row:
    loop: str  # plain | engine | data
    data: str  # torchvision | ours
    precision: str = "fp32"  # fp32 | bf16
    channels_last: bool = False
    compile: bool = False

    @property
    def key(self) -> tuple:
        return (self.data, self.precision, self.channels_last, self.compile)


ROWS = (  # in order of importance: the budget cuts from the end
    Row("data", "torchvision"), Row("data", "ours"),
    Row("plain", "torchvision"), Row("plain", "ours"), Row("engine", "ours"),
    Row("plain", "ours", "bf16"), Row("engine", "ours", "bf16"),
    Row("plain", "ours", "bf16", True), Row("engine", "ours", "bf16", True),
    Row("engine", "torchvision", "bf16", True),
    Row("plain", "ours", "fp32", True), Row("engine", "ours", "fp32", True),
    Row("plain", "ours", "bf16", True, True), Row("engine", "ours", "bf16", True, True),
    Row("plain", "ours", "bf16", False, True), Row("engine", "ours", "bf16", False, True),
    Row("plain", "ours", "fp32", False, True), Row("engine", "ours", "fp32", False, True),
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes: runs every code path in seconds")
    p.add_argument("--images", type=int, help="training images (default 50000, quick 32)")
    p.add_argument("--epochs", type=int, help="timed epochs per row after the warm-up (default 3, quick 1)")
    p.add_argument("--batch-size", type=int, help="training batch size (default 128, quick 16)")
    p.add_argument("--workers", type=int, help="torchvision DataLoader workers (default min(8, cores); quick 2)")
    p.add_argument("--budget-s", type=float, default=400.0,
                   help="skip the rows that would end after this many seconds (default 400)")
    p.add_argument("--compile-backend", help="torch.compile backend (default inductor; quick on the CPU: eager)")
    p.add_argument("--only", help="comma-separated row numbers to run (default all)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: --device {args.device} needs a CUDA GPU, and torch {torch.__version__} sees none "
              "(torch.cuda.is_available() is False); run `bash benchmarks/gpu_check.sh --device cpu --quick` "
              "to check the script on the CPU", file=sys.stderr)
        return 2
    if args.device not in ("cpu",) and not args.device.startswith("cuda"):
        print(f"gpu_check: --device must be cuda or cpu, not {args.device!r}", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    quick = args.quick
    n_train = args.images or (32 if quick else 50_000)
    n_val = 16 if quick else 1_000
    epochs = args.epochs or (1 if quick else 3)
    batch = args.batch_size or (16 if quick else 128)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = args.workers if args.workers is not None else (2 if quick else min(8, cores))
    backend = args.compile_backend or ("eager" if quick and device.type == "cpu" else "inductor")
    only = {int(i) for i in args.only.split(",")} if args.only else None

    from torch.utils.data import DataLoader
    from torchvision import transforms

    from _training import engine_epochs, make_sides, plain_epoch, synchronize
    from data_path import generated_cifar10_class, write_cifar_files
    from tui_trainer.data.loader import BatchTransform, TensorLoader
    from tui_trainer.data.synthetic import make_tensors
    from tui_trainer.models.cnn import SimpleCNN

    gen = torch.Generator().manual_seed(0)
    x_train, y_train = make_tensors((3, 32, 32), 10, n_train, gen)
    x_val, y_val = make_tensors((3, 32, 32), 10, n_val, gen)
    augment = BatchTransform(mean=MEAN, std=STD, scale=1 / 255, crop_padding=4, flip=True)
    ours = TensorLoader(x_train, y_train, batch, transform=augment, shuffle=True, drop_last=True, device=device)
    val = TensorLoader(x_val, y_val, 500, transform=BatchTransform(mean=MEAN, std=STD, scale=1 / 255),
                       device=device)
    tmp = tempfile.TemporaryDirectory(prefix="gpu-check-")
    write_cifar_files(tmp.name, x_train, y_train, x_val, y_val)
    tv_set = generated_cifar10_class()(tmp.name, train=True, transform=transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(MEAN, STD)]))
    tv = DataLoader(tv_set, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                    pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    loaders = {"ours": ours, "torchvision": tv}
    samples = (n_train // batch) * batch
    resident_mib = (x_train.numel() + x_val.numel()) / 2**20

    print(f"gpu check: SimpleCNN, {samples:,} CIFAR-shaped images an epoch, batch {batch}, 1 warm-up + "
          f"{epochs} timed epochs a row{'; QUICK: tiny sizes, not a measurement' if quick else ''}")
    print(machine_line() + f", torchvision DataLoader workers {workers}, compile backend {backend}")
    sys.stdout.flush()

    torch.manual_seed(0)
    template = SimpleCNN(num_classes=10, in_channels=3)
    headers = ["#", "loop", "data", "prec", "layout", "compile", "warm-up s", "epoch s", "samples/s",
               "vs #3", "engine/plain", "peak MiB"]
    results: dict[int, dict] = {}
    plain_epoch_s: dict[tuple, float] = {}
    lines = []

    def data_only(loader) -> list[float]:
        times = []
        for _ in range(1 + epochs):
            synchronize(device)
            t0 = time.perf_counter()
            for x, y in loader:
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
            synchronize(device)
            times.append(time.perf_counter() - t0)
        return times

    def train_row(row: Row) -> list[float]:
        torch.manual_seed(0)  # the same dropout masks and loader order for every row
        model = SimpleCNN(num_classes=10, in_channels=3)
        model.load_state_dict(template.state_dict())
        model = model.to(device)
        if row.channels_last:
            model = model.to(memory_format=torch.channels_last)
        side = make_sides(model, lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01), names=("x",))["x"]
        run_model = torch.compile(side.model, backend=backend) if row.compile else side.model
        loader = loaders[row.data]
        if row.loop == "plain":
            dtype = torch.bfloat16 if row.precision == "bf16" else None
            return [plain_epoch(side, loader, device, CLIP, autocast_dtype=dtype, channels_last=row.channels_last,
                                model=run_model)[0] for _ in range(1 + epochs)]
        watch = engine_epochs(side, loader, val, device, CLIP, 1 + epochs, amp=row.precision if row.precision != "fp32"
                              else "off", channels_last=row.channels_last, model=run_model, compiled=row.compile)
        return watch.train_s

    def estimate(row: Row) -> float:
        """Seconds a row may take: compilation dominates a compiled row; otherwise epochs of the
        same loader seen so far, with a margin."""
        if row.compile:
            return 10.0 if quick else 100.0
        seen = [r["epoch"] for r in results.values() if r["row"].data == row.data]
        return 1.5 * (1 + epochs) * max(seen) if seen else 5.0

    for number, row in enumerate(ROWS, start=1):
        if only is not None and number not in only:
            continue
        spent = time.perf_counter() - started
        if spent + estimate(row) > args.budget_s:
            lines.append([number, row.loop, row.data, row.precision, "CL" if row.channels_last else "NCHW",
                          "yes" if row.compile else "no", "skipped: time budget spent", "", "", "", "", ""])
            continue
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        if row.compile:
            torch._dynamo.reset()
        times = data_only(loaders[row.data]) if row.loop == "data" else train_row(row)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else math.nan
        epoch_s = median(times[1:])
        results[number] = {"row": row, "warmup": times[0], "epoch": epoch_s}
        if row.loop == "plain":
            plain_epoch_s[row.key] = epoch_s
        base = results.get(3)
        vs = f"{base['epoch'] / epoch_s:.2f}x" if base and row.loop != "data" else ""
        ratio = ""
        if row.loop == "engine" and row.key in plain_epoch_s:
            ratio = f"{plain_epoch_s[row.key] / epoch_s:.3f}"
        lines.append([number, row.loop, row.data, row.precision if row.loop != "data" else "",
                      ("CL" if row.channels_last else "NCHW") if row.loop != "data" else "",
                      ("yes" if row.compile else "no") if row.loop != "data" else "",
                      f"{times[0]:.2f}", f"{epoch_s:.3f}", f"{samples / epoch_s:,.0f}", vs, ratio,
                      f"{peak:,.0f}" if not math.isnan(peak) else "-"])
        print(f"  row {number} done: {row.loop} {row.data} {row.precision} "
              f"{'CL' if row.channels_last else 'NCHW'} compile={row.compile}: epoch {epoch_s:.3f} s "
              f"({time.perf_counter() - started:.0f} s elapsed)", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print()
    print(table(headers, lines))
    print("epoch s: median timed training epoch; warm-up s: the first epoch (compilation included); "
          "vs #3: epoch-time speed-up over row 3; engine/plain: plain epoch s / engine epoch s for the same "
          "data, precision, layout and compile" + (
              f"; peak MiB: the most GPU memory allocated during the row, counting the {resident_mib:,.0f} MiB "
              "of GPU-resident images that every row shares" if device.type == "cuda" else ""))
    tv_row, ours_row = results.get(3), results.get(4)
    if tv_row and ours_row:
        print(f"data path (plain loop, fp32): torchvision DataLoader {tv_row['epoch']:.3f} s an epoch, ours "
              f"{ours_row['epoch']:.3f} s: {tv_row['epoch'] / ours_row['epoch']:.2f}x")
    engine_ratios = [float(line[10]) for line in lines if line[10]]
    if engine_ratios:
        print(f"engine/plain over {len(engine_ratios)} configurations: median {median(engine_ratios):.3f}, "
              f"range {min(engine_ratios):.3f}-{max(engine_ratios):.3f}")
    print(f"({time.perf_counter() - started:.0f} s in all)")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
