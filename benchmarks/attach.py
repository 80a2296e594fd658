"""Attach benchmarks: how fast `tui-trainer attach` shows a long run, and how fast its keys act.

    python benchmarks/attach.py [open|keys|all] [--quick]

open   `tui-trainer attach RUN` on a real pseudo-terminal, for a run with 1,000 epochs of
       history (its lock held and its control channel served, as a training process leaves
       them): seconds from the command's start until the dashboard shows the run's current
       epoch (Python start-up and imports included), median of 5.
keys   a real training run (a tiny MLP, --threads 1, headless in its own process) with
       `attach` on a pseudo-terminal: `p` pressed 50 times (pause, resume, pause ...); the time
       from each key written to the terminal until the engine acted on it (the Paused or
       Resumed event's own timestamp, taken by the engine as it halts or goes on), p50/p95
       (target p95 <= 150 ms), and until the console showed it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (child_env, ensure_repo_importable, load_average, machine_line, median, table,  # noqa: E402
                     verdict)

ensure_repo_importable()

from tui_trainer import events as ev  # noqa: E402
from tui_trainer.testing import PtyRun  # noqa: E402

RUN = ["run", "synthetic", "--model", "mlp", "--synthetic-shape", "1x8x8", "--synthetic-train", "2048",
       "--synthetic-val", "256", "--batch-size", "32", "--epochs", "100000", "--patience", "0",
       "--checkpoint-every", "0", "--threads", "1"]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def bench_open(trials: int, tmp: Path) -> list[float]:
    """A run directory with 1,000 epochs of history, as a live run leaves it."""
    from tui_trainer.control_server import ControlServer, RunStatus
    from tui_trainer.engine.control import Control
    from tui_trainer.frontends.tui.scenes import cifar_run
    from tui_trainer.runlog import RunDirLock

    run_dir = tmp / "long"
    run_dir.mkdir()
    events = cifar_run(1000, 120, num_epochs=1200, patience=10**6)
    with open(run_dir / "events.jsonl", "w", encoding="utf-8") as fh:
        for event in events:
            fh.write(ev.to_json(event) + "\n")
    size = (run_dir / "events.jsonl").stat().st_size
    print(f"(the record: {len(events):,} events, {size / 1e6:.1f} MB)")
    lock = RunDirLock(run_dir).acquire()
    status = RunStatus()
    for event in events:
        status.emit(event)
    server = ControlServer(run_dir, Control(), status.snapshot)
    server.start()
    times = []
    try:
        for _ in range(trials):
            run = PtyRun(["attach", str(run_dir)], env=child_env())
            try:
                times.append(run.wait_for(b"1001/1200", timeout=60))
                run.send(b"q")
                time.sleep(0.3)
                run.send(b"d")
                run.wait(20)
            finally:
                run.kill()
    finally:
        server.close()
        lock.release()
    return times


def new_events(path: Path, offset: int) -> tuple[list[dict], int]:
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    complete = data[:data.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()], offset + len(complete)


def bench_keys(presses: int, tmp: Path) -> tuple[list[float], list[float]]:
    run_dir = tmp / "live"
    env = child_env()
    trainer = subprocess.Popen([sys.executable, "-m", "tui_trainer", *RUN, "--headless", "--run-dir", str(run_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    engine, screen = [], []
    attach = None
    try:
        events_path = run_dir / "events.jsonl"
        end = time.monotonic() + 120
        while not (events_path.exists() and b'"EpochEnd"' in events_path.read_bytes()):
            if time.monotonic() > end or trainer.poll() is not None:
                raise RuntimeError("the training run did not start")
            time.sleep(0.1)
        attach = PtyRun(["attach", str(run_dir)], env=env)
        attach.wait_for(b"ATTACHED", timeout=60)
        time.sleep(1.0)
        offset = events_path.stat().st_size
        for i in range(presses):
            want = "Paused" if i % 2 == 0 else "Resumed"
            label = b"PAUSED" if want == "Paused" else b"RUNNING"
            mark = len(attach.output)
            sent = time.time()
            sent_mono = time.monotonic()
            attach.send(b"p")
            acted = shown = None
            while time.monotonic() - sent_mono < 10 and (acted is None or shown is None):
                found, offset = new_events(events_path, offset)
                for event in found:
                    if event["event"] == want and acted is None:
                        acted = event["t"] - sent
                if shown is None and label in bytes(attach.output[mark:]):
                    shown = time.monotonic() - sent_mono
                time.sleep(0.002)
            if acted is None or shown is None:
                raise TimeoutError(f"no {want} within 10 s")
            engine.append(acted)
            screen.append(shown)
            time.sleep(random.uniform(0.2, 0.45))
        attach.send(b"q")
        time.sleep(0.3)
        attach.send(b"s")  # stop the run from the attached console
        trainer.wait(60)
    finally:
        if attach is not None:
            attach.kill()
        if trainer.poll() is None:
            trainer.kill()
    return engine, screen


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("which", nargs="?", default="all", choices=["open", "keys", "all"])
    p.add_argument("--quick", action="store_true", help="few trials: checks the script, measures little")
    args = p.parse_args(argv)
    print(machine_line(with_torch=False))
    print(f"1-minute load average before: {load_average()}" + ("  (QUICK: too few trials)" if args.quick else ""))
    with tempfile.TemporaryDirectory(prefix="tui-trainer-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.which in ("open", "all"):
            trials = 1 if args.quick else 5
            times = bench_open(trials, tmp)
            print(f"\nattach to a run with 1,000 epochs of history: seconds until the dashboard shows its current "
                  f"epoch, {trials} trials")
            print(table(["median s", "min s", "max s"],
                        [[f"{median(times):.2f}", f"{min(times):.2f}", f"{max(times):.2f}"]]))
        if args.which in ("keys", "all"):
            presses = 6 if args.quick else 50
            engine, screen = bench_keys(presses, tmp)
            p95 = percentile(engine, 0.95)
            print(f"\nkeys in an attached console: p -> the engine paused / resumed (its event's timestamp), "
                  f"{len(engine)} presses; and -> the console showing it")
            print(table(["", "p50 ms", "p95 ms", "max ms", "target"],
                        [["engine acted", f"{median(engine) * 1000:.0f}", f"{p95 * 1000:.0f}",
                          f"{max(engine) * 1000:.0f}",
                          f"p95 <= 150 ms: {verdict(p95 * 1000, 150, higher_is_better=False)}"],
                         ["on screen", f"{median(screen) * 1000:.0f}", f"{percentile(screen, 0.95) * 1000:.0f}",
                          f"{max(screen) * 1000:.0f}", ""]]))
    print(f"\n1-minute load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
