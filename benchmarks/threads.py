"""`--threads`: training samples/s with one intra-op thread vs torch's default (one per core), on
an idle machine, with every core kept busy by other processes, and with two runs at once.

Each trial is a real `tui-trainer run digits --headless` (SimpleCNN, the quick start), started
as a user would; its samples/s is the mean of the engine's per-epoch figure (warm-up steps and
pauses excluded) read from its events.jsonl. The two settings alternate trial by trial, and in
each condition they run side by side in time, so a slow moment of the shared machine hits both.

    python benchmarks/threads.py [--trials 5] [--epochs 3] [--limit-batches N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import child_env, interleave, load_average, machine_line, median, paired_ratios, table, usable_cores

SETTINGS = {"1 thread": ["--threads", "1"], "default": []}


def _env() -> dict[str, str]:
    env = child_env()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the default must be torch's own choice
        env.pop(name, None)
    env["TERM"] = "dumb"
    return env


def _start_run(run_dir: Path, epochs: int, extra: list[str], limit: int | None) -> subprocess.Popen:
    args = [sys.executable, "-m", "tui_trainer", "run", "digits", "--epochs", str(epochs), "--headless",
            "--patience", "0", "--checkpoint-every", "0", "--run-dir", str(run_dir), *extra]
    if limit:
        args += ["--limit-batches", str(limit)]
    return subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _samples_per_sec(run_dir: Path) -> float:
    rates = []
    for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event["event"] == "EpochEnd" and event["samples_per_sec"]:
            rates.append(event["samples_per_sec"])
    return sum(rates) / len(rates) if rates else float("nan")


def _runs(setting: str, epochs: int, copies: int, limit: int | None) -> list[float]:
    """`copies` runs with this setting started together; their samples/s."""
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(tmp) / f"run{i}" for i in range(copies)]
        procs = [_start_run(d, epochs, SETTINGS[setting], limit) for d in dirs]
        for proc in procs:
            _, err = proc.communicate(timeout=1800)
            if proc.returncode != 0:
                raise SystemExit(f"a run failed ({proc.returncode}): {err[-1000:]}")
        return [_samples_per_sec(d) for d in dirs]


class Spinners:
    """`n` processes that keep a core each busy (what another user's job does to us)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "Spinners":
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def measure(condition: str, trials: int, epochs: int, limit: int | None) -> dict[str, list[float]]:
    copies = 2 if condition == "two runs at once" else 1
    spinners = usable_cores() if condition == "cores busy" else 0

    def side(setting: str):
        def run() -> float:
            with Spinners(spinners):
                return median(_runs(setting, epochs, copies, limit))
        return run

    return interleave(trials, {name: side(name) for name in SETTINGS})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit-batches", type=int, default=None,
                        help="at most N of digits' 23 batches per epoch (shorter trials on a slow machine)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script works")
    args = parser.parse_args()
    trials, epochs = (1, 1) if args.quick else (args.trials, args.epochs)
    limit = 4 if args.quick else args.limit_batches
    import torch

    print(machine_line())
    print(f"default: torch picks {torch.get_num_threads()} intra-op threads here; load average before: "
          f"{load_average()}")
    rows = []
    for condition in ("idle", "cores busy", "two runs at once"):
        results = measure(condition, trials, epochs, limit)
        one, default = results["1 thread"], results["default"]
        ratios = paired_ratios(one, default)
        rows.append([condition, f"{median(one):,.0f}", f"{median(default):,.0f}", f"{median(ratios):.2f}x",
                     f"{min(ratios):.2f}-{max(ratios):.2f}"])
    batches = f" of {limit} batches" if limit else ""
    print(f"\ndigits, SimpleCNN, {epochs} epochs{batches} per run, {trials} trials per setting, medians; samples/s per run")
    print(table(["condition", "1 thread", "default", "1 thread / default", "range"], rows))
    print(f"(load average after: {load_average()}; 'cores busy': {usable_cores()} processes spinning, one per core)")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
