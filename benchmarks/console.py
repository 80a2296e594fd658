"""Console benchmarks: what the live console costs a run, and how fast it answers.

    python benchmarks/console.py [overhead|processes|responsiveness|memory|render|all] [--quick]

overhead        one run in one process, its epochs alternating between the console live (polling and
                drawing every panel, Textual's headless driver) and the console idle: samples/s of
                each live epoch over its idle neighbours (targets >= 0.95 tiny MLP, >= 0.98 SimpleCNN).
                Adjacent epochs share the machine's moment, so its noise (a shared VM drifts by
                10-30% between runs) cancels.
processes       the same comparison as whole processes: the console on a real pseudo-terminal vs
                --headless, trials interleaved; noisier, shown with its spread
responsiveness  pressing p on a real pseudo-terminal while SimpleCNN keeps both cores busy:
                time until PAUSED is on screen and the engine has halted (p95 <= 100 ms, 50 presses)
memory          peak RSS of a console run minus the same headless run (<= 60 MB)
render          frame time with 10,000 epochs of history vs 100 (<= 1.5x)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (child_env, ensure_repo_importable, interleave, load_average, machine_line, median,  # noqa: E402
                     paired_ratios, table, verdict)

ensure_repo_importable()

from tui_trainer.testing import PtyRun  # noqa: E402

WORKLOADS = {
    # a tiny MLP on digits-sized data, where per-step costs show
    "tiny MLP": ["synthetic", "--model", "mlp", "--synthetic-shape", "1x8x8", "--synthetic-train", "20000",
                 "--synthetic-val", "500", "--batch-size", "64", "--epochs", "4"],
    # the seed's SimpleCNN on CIFAR-shaped data
    "SimpleCNN": ["synthetic", "--model", "simplecnn", "--synthetic-shape", "3x32x32", "--synthetic-train", "3840",
                  "--synthetic-val", "256", "--batch-size", "128", "--epochs", "4"],
}
TARGETS = {"tiny MLP": 0.95, "SimpleCNN": 0.98}
COMMON = ["--checkpoint-every", "0", "--patience", "0", "--seed", "0"]


def epoch_rates(run_dir: Path) -> list[float]:
    rates = []
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        data = json.loads(line)
        if data["event"] == "EpochEnd":
            rates.append(data["samples_per_sec"])
    return rates[1:] or rates  # the first epoch includes start-up effects


def wait_finished(run_dir: Path, timeout: float) -> None:
    events = run_dir / "events.jsonl"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if events.exists() and ('"event":"RunFinished"' in events.read_text() or
                                '"event":"RunFailed"' in events.read_text()):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{run_dir} did not finish in {timeout}s")


def vm_hwm_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far, in MB; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def wait_peak(pid: int, timeout: float) -> float:
    """Wait for a child to exit; its peak RSS in MB.

    Read from /proc (VmHWM, a high-water mark of the program's own memory) until it exits, not from
    wait4's ru_maxrss: a child forked from this process starts that count at this process's size,
    which after the in-process benchmarks is over a gigabyte."""
    end = time.monotonic() + timeout
    peak = 0.0
    while time.monotonic() < end:
        peak = max(peak, vm_hwm_mb(pid))
        done, _, _ = os.wait4(pid, os.WNOHANG)
        if done:
            return peak
        time.sleep(0.02)
    raise TimeoutError(f"process {pid} still running after {timeout}s")


def run_headless(args: list[str], run_dir: Path) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "tui_trainer", "run", *args, *COMMON, "--headless",
                             "--run-dir", str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=child_env())
    return wait_peak(proc.pid, 900)


def run_console(args: list[str], run_dir: Path) -> float:
    run = PtyRun(["run", *args, *COMMON, "--run-dir", str(run_dir)], env=child_env())
    try:
        wait_finished(run_dir, 900)
        time.sleep(0.3)
        run.send(b"q")  # the finished console stays open on the report until q
        peak = wait_peak(run.proc.pid, 60)
        run.proc.returncode = 0
    finally:
        run.kill()
    return peak


def bench_overhead(trials: int, tmp: Path) -> list[list[str]]:
    rows = []
    for name, args in WORKLOADS.items():
        counter = iter(range(10_000))

        def side(kind: str):
            def measure() -> float:
                run_dir = tmp / f"{kind}-{next(counter)}"
                (run_console if kind == "console" else run_headless)(args, run_dir)
                rate = median(epoch_rates(run_dir))
                shutil.rmtree(run_dir, ignore_errors=True)
                return rate
            return measure

        results = interleave(trials, {"console": side("console"), "headless": side("headless")})
        paired = paired_ratios(results["console"], results["headless"])
        ratio = median(paired)
        rows.append([name, f"{median(results['headless']):,.0f}", f"{median(results['console']):,.0f}",
                     f"{ratio:.3f}", f"{min(paired):.2f}-{max(paired):.2f}",
                     f">= {TARGETS[name]}: {verdict(ratio, TARGETS[name])}"])
    return rows


AB_WORKLOADS = {
    "tiny MLP": dict(model="mlp", synthetic_shape=(1, 8, 8), synthetic_train=20000, batch_size=64, epochs=41),
    # epochs of ~6 s here; a real CIFAR-10 epoch on this CPU takes ~2 minutes, so the console's
    # per-epoch work (charts, checkpoints notices) weighs far more here than in use
    "SimpleCNN": dict(model="simplecnn", synthetic_shape=(3, 32, 32), synthetic_train=2560, batch_size=128,
                      epochs=21),
}


def bench_overhead_ab(tmp: Path, quick: bool) -> list[list[str]]:
    from tui_trainer import events as ev
    from tui_trainer.config import make_config
    from tui_trainer.frontends.tui.launch import build_app

    rows = []
    for name, spec in AB_WORKLOADS.items():
        spec = dict(spec, epochs=7 if quick else spec["epochs"])
        run_dir = tmp / f"ab-{name[:4]}"
        config = make_config("synthetic", synthetic_val=256, scheduler="none", patience=0, checkpoint_every=0,
                             seed=0, run_dir=str(run_dir), **spec)
        live = {"on": True}

        class Alternate:  # on the engine thread: even epochs live, odd epochs idle
            def emit(self, event):
                if isinstance(event, ev.EpochStarted):
                    live["on"] = event.epoch % 2 == 0

        events = ev.ListSink()
        app, store, _, _ = build_app(config, run_dir, extra_sinks=[Alternate(), events])
        draw = app.refresh_view
        app.refresh_view = lambda force=False: draw(force) if live["on"] else None

        async def run():
            async with app.run_test(size=(120, 36)):
                while store.snapshot().active or store.snapshot().status == "PREPARING":
                    await asyncio.sleep(0.2)  # not pilot.pause: that pings every widget

        asyncio.run(run())
        rates = {e.epoch: e.samples_per_sec for e in events.of(ev.EpochEnd)}
        ratios = [rates[k] / ((rates[k - 1] + rates[k + 1]) / 2)
                  for k in rates if k % 2 == 0 and k - 1 > 1 and k + 1 in rates]
        live_rates = [rates[k] for k in rates if k % 2 == 0]
        idle_rates = [rates[k] for k in rates if k % 2 == 1 and k > 1]
        ratio = median(ratios)
        rows.append([name, f"{median(idle_rates):,.0f}", f"{median(live_rates):,.0f}", f"{ratio:.3f}",
                     f"{len(ratios)}", f">= {TARGETS[name]}: {verdict(ratio, TARGETS[name])}"])
    return rows


def bench_memory(tmp: Path) -> list[list[str]]:
    rows = []
    for name, args in WORKLOADS.items():
        headless = run_headless(args, tmp / f"mem-headless-{name[:4]}")
        console = run_console(args, tmp / f"mem-console-{name[:4]}")
        rows.append([name, f"{headless:.0f}", f"{console:.0f}", f"{console - headless:.0f}",
                     f"<= 60 MB: {verdict(console - headless, 60, higher_is_better=False)}"])
    return rows


def bench_responsiveness(presses: int, tmp: Path) -> list[float]:
    """Latency of p -> PAUSED on screen and the Paused event in events.jsonl (engine halted)."""
    run_dir = tmp / "responsive"
    args = ["run", "digits", "--epochs", "1000", *COMMON, "--run-dir", str(run_dir)]
    run = PtyRun(args, env=child_env())
    latencies = []
    try:
        run.wait_for(b"RUNNING", timeout=120)
        events = run_dir / "events.jsonl"
        time.sleep(1.0)
        for _ in range(presses):
            mark = len(run.output)
            paused_before = events.read_text().count('"event":"Paused"')
            t0 = time.monotonic()
            run.send(b"p")
            on_screen = halted = None
            while time.monotonic() - t0 < 10:
                now = time.monotonic()
                if on_screen is None and b"PAUSED" in bytes(run.output[mark:]):
                    on_screen = now
                if halted is None and events.read_text().count('"event":"Paused"') > paused_before:
                    halted = now
                if on_screen and halted:
                    break
                time.sleep(0.002)
            if on_screen is None or halted is None:
                raise TimeoutError("no PAUSED within 10 s")
            latencies.append(max(on_screen, halted) - t0)
            run.send(b"p")  # resume, let it train a little, press again
            time.sleep(random.uniform(0.2, 0.45))
        run.send(b"q")
        time.sleep(0.3)
        run.send(b"y")
        run.wait(60)
    finally:
        run.kill()
    return latencies


def bench_render(repeats: int) -> list[list[str]]:
    from tui_trainer import events as ev
    from tui_trainer.engine.control import Control
    from tui_trainer.frontends.tui.app import TrainerApp
    from tui_trainer.frontends.tui.scenes import cifar_run
    from tui_trainer.frontends.tui.store import StateStore
    from tui_trainer.state import replay

    def history(n: int):
        base = replay(cifar_run(3, 100, num_epochs=n + 10))
        state = base
        for epoch in range(4, n + 1):
            state = _epoch(state, epoch, n + 10)
        return state

    def _epoch(state, epoch, total):
        from tui_trainer.state import reduce
        return reduce(state, ev.EpochEnd(t=state.last_t + 1, epoch=epoch, num_epochs=total,
                                         train_loss=1 / epoch, train_acc=100 - 100 / epoch, val_loss=1.1 / epoch,
                                         val_acc=99 - 100 / epoch, lr=1e-3, epoch_time=1.0, train_time=0.9,
                                         val_time=0.1, samples_per_sec=1000.0, is_best=epoch % 7 == 0,
                                         best_epoch=epoch - epoch % 7, best_val_acc=90.0))

    async def frame_times(n: int) -> list[float]:
        states = [history(n)]
        from tui_trainer.state import reduce
        states.append(reduce(states[0], ev.StepProgress(t=states[0].last_t + 1, epoch=n + 1, step=5, steps=391,
                                                        samples=640, loss=0.5, acc=80.0, epoch_loss=0.5,
                                                        epoch_acc=80.0, lr=1e-3, samples_per_sec=1000.0,
                                                        elapsed=10.0)))
        states.append(_epoch(states[1], n + 1, n + 10))
        store = StateStore(states[0])
        app = TrainerApp(store, Control(), poll_interval=3600)
        times = []
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()
            for i in range(repeats):
                store._state = states[1 + i % 2]  # alternate: every panel has something new
                t0 = time.perf_counter()
                app.refresh_view(force=True)
                await pilot.pause()
                times.append(time.perf_counter() - t0)
        return times

    small = asyncio.run(frame_times(100))
    large = asyncio.run(frame_times(10_000))
    ratio = median(large) / median(small)
    return [[f"{median(small) * 1000:.1f}", f"{median(large) * 1000:.1f}", f"{ratio:.2f}",
             f"<= 1.5x: {verdict(ratio, 1.5, higher_is_better=False)}"]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("which", nargs="?", default="all",
                   choices=["overhead", "processes", "responsiveness", "memory", "render", "all"])
    p.add_argument("--quick", action="store_true", help="one trial each: checks the script, measures little")
    p.add_argument("--trials", type=int, help="interleaved trials for overhead (default 5)")
    args = p.parse_args(argv)
    trials = args.trials or (1 if args.quick else 5)
    print(machine_line())
    print(f"1-minute load average before: {load_average()}" + ("  (QUICK: too few trials)" if args.quick else ""))
    with tempfile.TemporaryDirectory(prefix="tui-trainer-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.which in ("overhead", "all"):
            print("\nconsole overhead, one run per workload: epochs alternate console live / idle; ratio = median "
                  "of each live epoch's samples/s over the mean of its two idle neighbours")
            print(table(["workload", "idle", "live", "ratio", "pairs", "target"], bench_overhead_ab(tmp, args.quick)))
        if args.which in ("processes", "all"):
            print(f"\nconsole overhead as whole processes: samples/s (median of epochs 2+ per run); ratio = median "
                  f"over {trials} interleaved trials of console (pty) / --headless")
            print(table(["workload", "headless", "console", "ratio", "trial range", "target"],
                        bench_overhead(trials, tmp)))
        if args.which in ("responsiveness", "all"):
            presses = 5 if args.quick else 50
            lat = sorted(bench_responsiveness(presses, tmp))
            p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
            print(f"\nresponsiveness: p -> PAUSED on screen and engine halted, {len(lat)} presses, digits SimpleCNN")
            print(table(["p50 ms", "p95 ms", "max ms", "target"],
                        [[f"{median(lat) * 1000:.0f}", f"{p95 * 1000:.0f}", f"{lat[-1] * 1000:.0f}",
                          f"p95 <= 100 ms: {verdict(p95 * 1000, 100, higher_is_better=False)}"]]))
        if args.which in ("memory", "all"):
            print("\nmemory: peak RSS (MB) of the same run, console vs headless")
            print(table(["workload", "headless", "console", "difference", "target"], bench_memory(tmp)))
        if args.which in ("render", "all"):
            repeats = 6 if args.quick else 30
            print(f"\nrender: median frame time (ms) at 120x36, {repeats} frames each")
            print(table(["100 epochs", "10,000 epochs", "ratio", "target"], bench_render(repeats)))
    print(f"\n1-minute load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
