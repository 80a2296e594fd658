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
  prec     fp32, or bf16 autocast.    layout: NCHW or channels_last.
  compile  no; default: torch.compile; reduce-overhead: torch.compile(mode="reduce-overhead"),
           inductor's own CUDA graphs (on the CPU with --quick: the eager backend, no graphs).
  step     eager; or captured: the whole training step as one CUDA graph with a fused
           capturable AdamW whose LR is a device tensor. plain: written by hand as torch's
           docs do (_training.PlainCapturedLoop); engine: Trainer(cuda_graphs="on")
           (graphed_step.py). On the CPU with --quick the same code runs the step function
           where a GPU would replay it (the engine through graphed_step.EagerReplay).

The rows for one step at four speeds -- eager (4, 5), compile default (17, 18), compile
reduce-overhead (19, 20), captured (21, 22; bf16: 23, 24) -- run right after row 5, each plain
loop next to the engine doing the same; below the table, the seed recipe's 100 epochs are
projected from each engine row's epoch time (training alone, and with validation).

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
    compile: str = "no"  # no | default | reduce-overhead
    step: str = "eager"  # eager | captured

    @property
    def key(self) -> tuple:
        return (self.data, self.precision, self.channels_last, self.compile, self.step)


ROWS = (  # numbered from 1; run in the order of RUN_ORDER: the budget cuts from its end
    Row("data", "torchvision"), Row("data", "ours"),
    Row("plain", "torchvision"), Row("plain", "ours"), Row("engine", "ours"),
    Row("plain", "ours", "bf16"), Row("engine", "ours", "bf16"),
    Row("plain", "ours", "bf16", True), Row("engine", "ours", "bf16", True),
    Row("engine", "torchvision", "bf16", True),
    Row("plain", "ours", "fp32", True), Row("engine", "ours", "fp32", True),
    Row("plain", "ours", "bf16", True, "default"), Row("engine", "ours", "bf16", True, "default"),
    Row("plain", "ours", "bf16", False, "default"), Row("engine", "ours", "bf16", False, "default"),
    Row("plain", "ours", "fp32", False, "default"), Row("engine", "ours", "fp32", False, "default"),
    Row("plain", "ours", "fp32", False, "reduce-overhead"), Row("engine", "ours", "fp32", False, "reduce-overhead"),
    Row("plain", "ours", "fp32", step="captured"), Row("engine", "ours", "fp32", step="captured"),
    Row("plain", "ours", "bf16", step="captured"), Row("engine", "ours", "bf16", step="captured"),
)
# eager, compile, reduce-overhead and captured side by side first, then the other layouts
RUN_ORDER = (1, 2, 3, 4, 5, 21, 22, 23, 24, 17, 18, 19, 20, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
PROJECTED_ROWS = {5: "eager", 18: "compile", 20: "compile reduce-overhead", 22: "captured", 24: "captured bf16"}
SEED_RECIPE_EPOCHS = 100
SEED_RECIPE_IMAGES = 50_000  # CIFAR-10's training set


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes: runs every code path in seconds")
    p.add_argument("--images", type=int, help="training images (default 50000, quick 32)")
    p.add_argument("--epochs", type=int, help="timed epochs per row after the warm-up (default 3, quick 1)")
    p.add_argument("--batch-size", type=int, help="training batch size (default 128, quick 16)")
    p.add_argument("--workers", type=int, help="torchvision DataLoader workers (default min(8, cores); quick 2)")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="skip the rows that would end after this many seconds (default 420)")
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

    from _training import PlainCapturedLoop, engine_epochs, make_sides, plain_epoch, synchronize
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
    headers = ["#", "loop", "data", "prec", "layout", "compile", "step", "warm-up s", "epoch s", "samples/s",
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

    def train_row(row: Row) -> tuple[list[float], list[float]]:
        """(training seconds per epoch, seconds with validation per epoch; empty for a plain row)."""
        torch.manual_seed(0)  # the same dropout masks and loader order for every row
        model = SimpleCNN(num_classes=10, in_channels=3)
        model.load_state_dict(template.state_dict())
        model = model.to(device)
        if row.channels_last:
            model = model.to(memory_format=torch.channels_last)
        captured = row.step == "captured"
        fused = {"fused": True} if captured else {}  # the captured step needs a fused optimizer (both sides)
        side = make_sides(model, lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01, **fused),
                          names=("x",))["x"]
        run_model = side.model
        if row.compile != "no":
            mode = {"mode": "reduce-overhead"} if row.compile == "reduce-overhead" and backend == "inductor" else {}
            run_model = torch.compile(side.model, backend=backend, **mode)
        loader = loaders[row.data]
        dtype = torch.bfloat16 if row.precision == "bf16" else None
        if row.loop == "plain" and captured:
            plain = PlainCapturedLoop(side, device, CLIP, autocast_dtype=dtype, channels_last=row.channels_last)
            return [plain.epoch(loader) for _ in range(1 + epochs)], []
        if row.loop == "plain":
            return [plain_epoch(side, loader, device, CLIP, autocast_dtype=dtype, channels_last=row.channels_last,
                                model=run_model)[0] for _ in range(1 + epochs)], []
        from tui_trainer.engine.graphed_step import EagerReplay

        watch = engine_epochs(side, loader, val, device, CLIP, 1 + epochs, amp=row.precision if row.precision != "fp32"
                              else "off", channels_last=row.channels_last, model=run_model,
                              compiled=row.compile != "no", cuda_graphs="on" if captured else "off",
                              capture_backend=EagerReplay() if captured and device.type != "cuda" else None)
        return watch.train_s, watch.epoch_s

    def estimate(row: Row) -> float:
        """Seconds a row may take: compilation dominates a compiled row; otherwise epochs of the
        same loader seen so far, with a margin."""
        if row.compile != "no":
            return 10.0 if quick else 100.0
        seen = [r["epoch"] for r in results.values() if r["row"].data == row.data]
        return 1.5 * (1 + epochs) * max(seen) if seen else 5.0

    def describe(number: int, row: Row) -> list:
        return [number, row.loop, row.data, row.precision, "CL" if row.channels_last else "NCHW", row.compile,
                row.step]

    for number in RUN_ORDER:
        row = ROWS[number - 1]
        if only is not None and number not in only:
            continue
        spent = time.perf_counter() - started
        if spent + estimate(row) > args.budget_s:
            lines.append(describe(number, row) + ["skipped: time budget spent", "", "", "", "", ""])
            continue
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        if row.compile != "no":
            torch._dynamo.reset()
        try:
            times, with_val = (data_only(loaders[row.data]), []) if row.loop == "data" else train_row(row)
        except Exception as exc:  # noqa: BLE001 - one row's failure (an unverified path on a GPU) is reported in
            # its row, and the other rows still run
            import traceback

            traceback.print_exc()
            detail = (str(exc).strip().splitlines() or [""])[0][:70]
            lines.append(describe(number, row) + [f"failed: {type(exc).__name__}: {detail}", "", "", "", "", ""])
            continue
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else math.nan
        epoch_s = median(times[1:])
        results[number] = {"row": row, "warmup": times[0], "epoch": epoch_s,
                           "with_val": median(with_val[1:]) if len(with_val) > 1 else None}
        if row.loop == "plain":
            plain_epoch_s[row.key] = epoch_s
        base = results.get(3)
        vs = f"{base['epoch'] / epoch_s:.2f}x" if base and row.loop != "data" else ""
        ratio = ""
        if row.loop == "engine" and row.key in plain_epoch_s:
            ratio = f"{plain_epoch_s[row.key] / epoch_s:.3f}"
        what = describe(number, row) if row.loop != "data" else [number, row.loop, row.data, "", "", "", ""]
        lines.append(what + [f"{times[0]:.2f}", f"{epoch_s:.3f}", f"{samples / epoch_s:,.0f}", vs, ratio,
                             f"{peak:,.0f}" if not math.isnan(peak) else "-"])
        print(f"  row {number} done: {row.loop} {row.data} {row.precision} "
              f"{'CL' if row.channels_last else 'NCHW'} compile={row.compile} step={row.step}: epoch {epoch_s:.3f} s "
              f"({time.perf_counter() - started:.0f} s elapsed)", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print()
    lines.sort(key=lambda line: line[0])
    print(table(headers, lines))
    print("epoch s: median timed training epoch; warm-up s: the first epoch (compilation included); "
          "vs #3: epoch-time speed-up over row 3; engine/plain: plain epoch s / engine epoch s for the same "
          "data, precision, layout, compile and step" + (
              f"; peak MiB: the most GPU memory allocated during the row, counting the {resident_mib:,.0f} MiB "
              "of GPU-resident images that every row shares" if device.type == "cuda" else ""))
    tv_row, ours_row = results.get(3), results.get(4)
    if tv_row and ours_row:
        print(f"data path (plain loop, fp32): torchvision DataLoader {tv_row['epoch']:.3f} s an epoch, ours "
              f"{ours_row['epoch']:.3f} s: {tv_row['epoch'] / ours_row['epoch']:.2f}x")
    for number, name in PROJECTED_ROWS.items():
        result = results.get(number)
        if result is None:
            continue
        scale = SEED_RECIPE_EPOCHS * SEED_RECIPE_IMAGES / samples  # from this run's epoch to the recipe's run
        with_val = f", {scale * result['with_val']:.1f} s with validation" if result["with_val"] else ""
        print(f"seed recipe projected ({SEED_RECIPE_EPOCHS} epochs of {SEED_RECIPE_IMAGES:,} images, batch {batch}), "
              f"{name} (row {number}): {scale * result['epoch']:.1f} s of training{with_val}")
    engine_ratios = [float(line[11]) for line in lines if len(line) > 11 and line[11]]
    if engine_ratios:
        print(f"engine/plain over {len(engine_ratios)} configurations: median {median(engine_ratios):.3f}, "
              f"range {min(engine_ratios):.3f}-{max(engine_ratios):.3f}")
    print(f"({time.perf_counter() - started:.0f} s in all)")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
