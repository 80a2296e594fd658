"""Engine overhead: training samples/s of our engine (`Trainer.fit`) vs the hand-written loop.

    python benchmarks/engine_overhead.py            # full run (2-3 minutes on 2 quiet cores)
    python benchmarks/engine_overhead.py --quick    # seconds; checks the script works

Three workloads, each in a fresh process so that all torch work (data, model, both loops)
runs on that process's one thread:
  tiny  the MLP (64-256-128-10, dropout 0.2) on the digits dataset (1,437 training images of
        8x8), batch 64: a step costs about a millisecond, so per-step overhead shows.
        A trial is 4 epochs (92 steps). Target ratio >= 0.97.
  cnn   SimpleCNN on CIFAR-shaped synthetic uint8 images (3x32x32) with the random crop +
        flip augmentation, batch 128. A step takes 0.25 s or more on a small CPU, so a
        trial is 4 steps (512 images; 100 steps on a GPU). Target ratio >= 0.99.
  job   a whole run through the seed's API: `Trainer(..., save_dir).train(3)` on a 64-128-10
        MLP, 16,384 training and 4,096 validation samples (Gaussian blobs), batch 64, the
        default clipping at 1.0: the plain log, config.json, events.jsonl, a checkpoint after
        every epoch, the final report and report.json, everything on. The plain side does the
        same steps and validates each epoch (loss and accuracy read back). The ratio is over the
        whole run's wall time. Target ratio >= 0.97.
        A second row, "job-same-step", compares the engine with a plain loop that clips and
        clears the gradients with the engine's own grads.py (bit for bit the same numbers as
        clip_grad_norm_ and zero_grad, less host work per call): the two then differ only in
        the engine's bookkeeping (metrics, events, checkpoints, report), which the row prints
        as a share of the run time. It has no target; it says how much of the first row's
        ratio comes from the engine's cheaper clipping rather than from small bookkeeping.

What each side does, on identical copies of the model (same initial weights), each with its
own AdamW (lr 1e-3, wd 0.01) and the SAME TensorLoader object for the training batches:
  plain   per batch: x.to(dev), y.to(dev), forward, loss, zero_grad(set_to_none=True),
          backward, [clip_grad_norm_], step, as the seed's loop writes it. Nothing else: no
          loss or accuracy kept.
  engine  Trainer.fit with save_dir=None (no checkpoints), no console sink, and a RunLog
          writing events.jsonl (unless --no-run-log); per step it also keeps loss and
          accuracy on the device and reads them back every 0.25 s, as in a real run.
Rows: gradient clipping off in both, then clipping at max-norm 1.0 in both. The engine clips
and clears gradients with grads.py (the same numbers as the plain side's clip_grad_norm_ and
zero_grad, with less host work per call); on models as small as these that is a few percent
of a step, in the engine's favour.

Timing: trials alternate engine-first and plain-first, after one untimed trial each. The
training pass is timed from outside the engine by a sink that reads the clock at
EpochStarted and ValidationStarted (the plain loop: the same clock around its batch loop).
The ratio is the median over trials of engine/plain samples/s within the same trial; the
range shows the spread. "incl. val" times the whole epoch with validation instead (the
plain side then runs a plain inference pass over the same validation loader).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import (child_env, interleave, load_average, median, paired_ratios, table, usable_cores,
                     verdict)

TARGETS = {"tiny": 0.97, "cnn": 0.99, "job": 0.97}
DEFAULT_TRIALS = {"tiny": 31, "cnn": 15, "job": 21}
RESULT_TAG = "RESULT "


# --------------------------------------------------------------------------- child process
def build_workload(name: str, quick: bool, device_name: str = "cpu"):
    """(the dataset bundle, the model, epochs per trial, the run config) for a workload."""
    import torch

    from _common import ensure_repo_importable

    ensure_repo_importable()
    from tui_trainer.config import make_config
    from tui_trainer.data import build_data
    from tui_trainer.models import build_model

    torch.manual_seed(0)
    device = torch.device(device_name)
    gpu = device.type == "cuda"
    if name == "tiny":
        config = make_config("digits", model="mlp", seed=0)
        epochs = 1 if quick else 4  # an epoch of digits is 23 steps of 64
    elif name == "cnn":
        # A SimpleCNN step of 128 CIFAR-shaped images takes a quarter of a second or more on a
        # small CPU: a trial is four steps, and many trials keep the machine's noise out of the median.
        shape = (3, 16, 16) if quick else (3, 32, 32)
        config = make_config("synthetic", model="simplecnn", seed=0, augment=True, batch_size=16 if quick else 128,
                             synthetic_shape=shape, synthetic_train=32 if quick else (12_800 if gpu else 512),
                             synthetic_val=16 if quick else 128)
        epochs = 1
    else:
        raise SystemExit(f"unknown workload {name!r}")
    data = build_data(config, device)
    model = build_model(config.model, data.input_shape, data.num_classes).to(device)
    return data, model, epochs, config


def run_child(args) -> None:
    import torch

    rows = []
    for name in args.child.split(","):
        rows += measure_workload(name, args)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else ""
    print(RESULT_TAG + json.dumps({"rows": rows, "torch": torch.__version__, "threads": torch.get_num_threads(),
                                   "gpu": gpu}))


def measure_job(args) -> list[dict]:
    """The seed API's whole run against the plain loop doing the same steps and validation."""
    import torch

    from _common import ensure_repo_importable
    from _training import make_sides, plain_epoch, seed_api_run

    ensure_repo_importable()
    from tui_trainer.data.loader import TensorLoader

    device = torch.device(args.device)
    n_train, n_val, epochs = (1024, 256, 1) if args.quick else (16_384, 4_096, 3)
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 64, generator=g)
    y, vy = torch.randint(0, 10, (n_train,), generator=g), torch.randint(0, 10, (n_val,), generator=g)
    x, vx = centres[y] + torch.randn(n_train, 64, generator=g), centres[vy] + torch.randn(n_val, 64, generator=g)
    loader = TensorLoader(x, y, 64, shuffle=True, device=device)
    val_loader = TensorLoader(vx, vy, 256, device=device)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(device)
    sides = make_sides(model, lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01),
                       names=("engine", "plain", "same_step"))
    tmp = tempfile.TemporaryDirectory(prefix="engine-overhead-job-")
    runs = iter(range(10**6))

    def engine_trial():
        return seed_api_run(sides["engine"], loader, val_loader, device, epochs, os.path.join(tmp.name, str(next(runs))))

    def plain_trial(side="plain", engine_grads=False):
        return sum(e for _, e in (plain_epoch(sides[side], loader, device, 1.0, val_loader=val_loader,
                                              engine_grads=engine_grads) for _ in range(epochs)))

    def same_step_trial():
        return plain_trial("same_step", engine_grads=True)

    if not args.quick:
        engine_trial(), plain_trial(), same_step_trial()  # untimed: first-touch allocations, lazy imports
    results = interleave(args.trials, {"engine": engine_trial, "plain": plain_trial, "same_step": same_step_trial})
    tmp.cleanup()
    n = n_train * epochs
    rows = []
    for workload, plain_name in (("job", "plain"), ("job-same-step", "same_step")):
        ratios = paired_ratios(results[plain_name], results["engine"])
        rows.append({"workload": workload, "clip": 1.0, "trials": args.trials, "epochs_per_trial": epochs,
                     "samples_per_trial": n, "batch_size": 64,
                     "plain_rate": median([n / t for t in results[plain_name]]),
                     "engine_rate": median([n / t for t in results["engine"]]), "ratio": median(ratios),
                     "ratio_min": min(ratios), "ratio_max": max(ratios), "ratio_with_val": median(ratios),
                     "engine_reported_rate": 0.0})
    return rows


def measure_workload(name: str, args) -> list[dict]:
    import torch

    if name == "job":
        return measure_job(args)

    from _training import engine_epochs, make_sides, plain_epoch
    from tui_trainer.runlog import RunLog

    data, model, epochs, config = build_workload(name, args.quick, args.device)
    device = torch.device(args.device)
    loader, val_loader = data.train_loader, data.val_loader
    samples_per_epoch = loader.num_samples
    tmp = tempfile.TemporaryDirectory(prefix="engine-overhead-")
    extra = [] if args.no_run_log else [RunLog(tmp.name)]
    rows = []
    for clip in args.clip:
        sides = make_sides(model, lambda p: torch.optim.AdamW(p, lr=config.lr, weight_decay=config.weight_decay))

        def engine_trial():
            watch = engine_epochs(sides["engine"], loader, val_loader, device, clip, epochs, extra_sinks=extra,
                                  num_classes=data.num_classes)
            return sum(watch.train_s), sum(watch.epoch_s), median(watch.reported_rate)

        def plain_trial():
            times = [plain_epoch(sides["plain"], loader, device, clip, val_loader=val_loader) for _ in range(epochs)]
            return sum(t for t, _ in times), sum(e for _, e in times), 0.0

        if not args.quick:
            # one untimed trial each: first-touch allocations, lazy imports (scikit-learn in the
            # engine's final report), the allocator's caches
            engine_trial(), plain_trial()
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            engine_trial()
            prof.disable()
            print(f"--- cProfile of one engine trial ({name}, clip {clip}) ---", file=sys.stderr)
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        results = interleave(args.trials, {"engine": engine_trial, "plain": plain_trial})
        eng, pln = results["engine"], results["plain"]
        n = samples_per_epoch * epochs
        train_ratios = paired_ratios([t for t, _, _ in pln], [t for t, _, _ in eng])
        rows.append({
            "workload": name, "clip": clip, "trials": args.trials, "epochs_per_trial": epochs,
            "samples_per_trial": n, "batch_size": loader.batch_size,
            "plain_rate": median([n / t for t, _, _ in pln]),
            "engine_rate": median([n / t for t, _, _ in eng]),
            "ratio": median(train_ratios), "ratio_min": min(train_ratios), "ratio_max": max(train_ratios),
            "ratio_with_val": median(paired_ratios([e for _, e, _ in pln], [e for _, e, _ in eng])),
            "engine_reported_rate": median([r for _, _, r in eng]),
        })
    for sink in extra:
        sink.close()
    tmp.cleanup()
    return rows


# --------------------------------------------------------------------------- parent
def run_workload(name: str, args) -> dict:
    """Measure one workload (or, comma-separated, several) in a fresh process."""
    trials = args.trials or (1 if args.quick else DEFAULT_TRIALS[name])
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--trials", str(trials),
           "--clip", ",".join(str(c) for c in args.clip)]
    if args.quick:
        cmd.append("--quick")
    if args.no_run_log:
        cmd.append("--no-run-log")
    if args.profile:
        cmd.append("--profile")
    if args.device != "cpu":
        cmd += ["--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(),
                          cwd=os.path.dirname(os.path.abspath(__file__)))
    if args.profile and proc.stderr:
        sys.stderr.write(proc.stderr)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    sys.stderr.write(proc.stdout + proc.stderr)
    raise SystemExit(f"engine_overhead: the {name} workload failed (exit {proc.returncode})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, one trial: checks the script, measures nothing")
    p.add_argument("--trials", type=int, help="interleaved trials per side (default: tiny 31, cnn 15, job 21; quick 1)")
    p.add_argument("--workloads", default="tiny,cnn,job", help="comma-separated: tiny, cnn, job")
    p.add_argument("--clip", default="0,1.0", help="comma-separated max-norms; 0 = clipping off (default 0,1.0)")
    p.add_argument("--no-run-log", action="store_true", help="engine without the events.jsonl sink")
    p.add_argument("--profile", action="store_true", help="print a cProfile of one engine trial per row")
    p.add_argument("--device", default="cpu", help="cpu (default; the targets are for the CPU) or cuda "
                   "(cnn: a trial is 100 steps)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.clip = [float(c) for c in str(args.clip).split(",")]
    if args.child:
        run_child(args)
        return 0

    from _common import machine_line

    started, load_before = time.perf_counter(), load_average()
    if args.quick:  # one process for everything: the point is to run the code, not to measure
        results = [run_workload(args.workloads, args)]
    else:
        results = [run_workload(name, args) for name in args.workloads.split(",")]
    rows = [row for r in results for row in r["rows"]]
    print(f"engine overhead: Trainer.fit vs the plain loop, samples/s of the training pass "
          f"(median over interleaved trials{'; QUICK: tiny sizes, not a measurement' if args.quick else ''})")
    print(machine_line(with_torch=False) + f", torch {results[0]['torch']} ({results[0]['threads']} threads)"
          + (f", on the GPU: {results[0]['gpu']} (the targets are for the CPU)" if results[0].get("gpu") else ""))
    print(table(
        ["workload", "clip", "batch", "trials", "plain samples/s", "engine samples/s", "ratio", "trial range",
         "ratio incl. val", "target", "verdict"],
        [[r["workload"], "off" if not r["clip"] else f"{r['clip']:g}", r["batch_size"], r["trials"], f"{r['plain_rate']:,.0f}",
          f"{r['engine_rate']:,.0f}", f"{r['ratio']:.3f}", f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f}",
          f"{r['ratio_with_val']:.3f}", f">= {TARGETS[r['workload']]}" if r["workload"] in TARGETS else "-",
          "quick: not judged" if args.quick else verdict(r["ratio"], TARGETS[r["workload"]])
          if r["workload"] in TARGETS else f"bookkeeping {100 * (1 / r['ratio'] - 1):+.1f}% of run time"]
         for r in rows]))
    print(f"({time.perf_counter() - started:.0f} s; 1-minute load average {load_before} before, "
          f"{load_average()} after, on {usable_cores()} cores)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rows": rows, "torch": results[0]["torch"]}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
