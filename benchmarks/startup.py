"""Start-up: wall time of `tui-trainer --help`, and proof that it imports no torch or Textual.

    python benchmarks/startup.py            # 15 interleaved trials of each command
    python benchmarks/startup.py --quick    # 2 trials; checks the script works

Commands, timed from spawn to exit with output discarded, alternating their order per trial:
  tui-trainer --help          the console script installed beside this Python (the target)
  tui-trainer --help (PATH)   whatever `tui-trainer` resolves to on PATH, when that is a
                              different file (e.g. a version manager's shim)
  python -m tui_trainer --help
  python -c pass              the interpreter's own start-up, the floor under all of the above
  --also PATH                 any other launcher, e.g. pyenv's shim, which PATH finds first in a
                              shell but not inside this script
Target: tui-trainer --help <= 0.3 s.

The import check runs `python -X importtime -m tui_trainer --help` and lists every heavy
package it imported (torch, torchvision, textual, rich, numpy, ...): there must be none.

The first TUI frame (target <= 1 s after launch): `tui-trainer run digits` on a real
pseudo-terminal, timed until the first frame is written (the console draws it before torch
has been imported).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from _common import child_env, interleave, load_average, machine_line, median, table, verdict

TARGET_HELP_S = 0.3
TARGET_FIRST_FRAME_S = 1.0
HEAVY = ("torch", "torchvision", "textual", "textual_plotext", "plotext", "rich", "numpy", "sklearn", "scipy",
         "psutil", "pynvml")


def console_script() -> str | None:
    """The `tui-trainer` entry point installed with this interpreter (not a shim)."""
    for folder in (os.path.dirname(sys.executable), os.path.join(sys.prefix, "bin")):
        path = os.path.join(folder, "tui-trainer")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def timed(cmd: list[str]):
    env = child_env()

    def run() -> float:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"startup: {' '.join(cmd)} failed (exit {proc.returncode}): "
                             f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
        return elapsed
    return run


def heavy_imports() -> list[str]:
    """Top-level packages from HEAVY that `python -X importtime -m tui_trainer --help` imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tui_trainer", "--help"],
                          capture_output=True, text=True, env=child_env())
    if proc.returncode != 0:
        raise SystemExit(f"startup: python -m tui_trainer --help failed: {proc.stderr.strip()[-300:]}")
    found = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            module = line.rsplit("|", 1)[1].strip()
            top = module.split(".")[0]
            if top in HEAVY:
                found.add(top)
    return sorted(found)


def first_tui_frame(trials: int) -> list[float] | None:
    """Seconds from launching `tui-trainer run digits` on a real 120x36 pseudo-terminal until
    its first frame (the header with the PREPARING badge) has been written; one value per trial.
    Target <= 1 s. The run is killed right after: only the start-up is measured."""
    import tempfile

    from _common import ensure_repo_importable

    ensure_repo_importable()
    from tui_trainer.testing import PtyRun

    times = []
    with tempfile.TemporaryDirectory(prefix="tui-trainer-frame-") as tmp:
        for trial in range(trials):
            run = PtyRun(["run", "digits", "--run-dir", os.path.join(tmp, f"run{trial}")], env=child_env())
            try:
                times.append(run.wait_for(b"PREPARING", timeout=30))
            finally:
                run.kill()
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, help="interleaved runs of each command (default 15; quick 2)")
    p.add_argument("--quick", action="store_true", help="two trials: checks the script, measures little")
    p.add_argument("--also", metavar="PATH", action="append", default=[],
                   help="also time PATH --help (e.g. a version manager's shim for tui-trainer); repeatable")
    args = p.parse_args(argv)
    trials = args.trials or (2 if args.quick else 15)

    script = console_script()
    on_path = shutil.which("tui-trainer")
    commands: dict[str, list[str]] = {}
    if script:
        commands["tui-trainer --help"] = [script, "--help"]
    if on_path and (not script or os.path.realpath(on_path) != os.path.realpath(script)):
        commands["tui-trainer --help (PATH: " + on_path + ")"] = [on_path, "--help"]
    for path in args.also:
        commands[f"{path} --help"] = [path, "--help"]
    commands["python -m tui_trainer --help"] = [sys.executable, "-m", "tui_trainer", "--help"]
    commands["python -c pass"] = [sys.executable, "-c", "pass"]

    load_before = load_average()
    heavy = heavy_imports()
    sides = {name: timed(cmd) for name, cmd in commands.items()}
    for run in sides.values():  # untimed: the file cache, first-run compilation of modules
        run()
    results = interleave(trials, sides)

    print(f"start-up: median wall time of {trials} interleaved runs per command"
          f"{' (QUICK: too few runs to be a measurement)' if args.quick else ''}")
    print(machine_line(with_torch=False))
    rows = []
    for name, times in results.items():
        target = ""
        if name == "tui-trainer --help" or (name.startswith("tui-trainer --help") and not script):
            target = f"<= {TARGET_HELP_S} s: {verdict(median(times), TARGET_HELP_S, higher_is_better=False)}"
        rows.append([name, f"{median(times):.3f}", f"{min(times):.3f}", f"{max(times):.3f}", target])
    print(table(["command", "median s", "min s", "max s", "target"], rows))
    print("imports during --help: " + (", ".join(heavy) + "  <- should be none" if heavy
                                       else f"none of {', '.join(HEAVY)}"))
    frames = first_tui_frame(trials)
    if frames is None:
        print("first TUI frame: not measured yet (see first_tui_frame in benchmarks/startup.py)")
    else:
        print(f"first TUI frame: median {median(frames):.3f} s, target <= {TARGET_FIRST_FRAME_S} s: "
              f"{verdict(median(frames), TARGET_FIRST_FRAME_S, higher_is_better=False)}")
    print(f"(1-minute load average {load_before} before, {load_average()} after)")
    return 1 if heavy else 0


if __name__ == "__main__":
    sys.exit(main())
