"""Torture test: SIGKILL a headless run at random moments, many times, and resume it each time.

    python benchmarks/torture.py                 # 60 kills (several minutes on 2 cores)
    python benchmarks/torture.py --kills 10      # quicker
    python benchmarks/torture.py --keep DIR      # leave the run directories in DIR

About half of the kills are aimed at checkpoint writes (the run directory is polled until a
save's temporary file exists, then the process is killed while it writes); half of those wait
for a periodic checkpoint's write, which comes after best_model.pth and before last.pth, so the
kill leaves an epoch whose best model is saved and whose periodic checkpoint is not. The others
land at a random moment of the process's start-up (torch loading, reading the checkpoint) or of
its training (steps, validation, saves), and the last tenth during the final report (the best
model read back, report.json written; a few milliseconds). A run killed after its report was
written is complete: such a kill is counted as one after the end, and needs no resume. After every
kill the newest checkpoint must load (never a torn file) and a resume must be possible; at the
end the run must finish with a valid report, no temporary files left behind, final weights,
per-epoch metrics and the whole history (losses, accuracies, LRs, in report.json and last.pth)
bit-identical to the same run done without interruption, and every periodic checkpoint the
run promised must exist and equal the uninterrupted run's.

Prints the counts: kills (and how many landed during a checkpoint write), resumes, failures.
The exit status is 1 if anything failed. tests/test_torture.py runs a short version of this.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# A small run with augmentation, dropout, accumulation, early-stopping state and a checkpoint
# every epoch (three saves an epoch: best, periodic, last), so that saves are frequent.
RUN_ARGS = ("synthetic", "--model", "mlp", "--synthetic-shape", "3x8x8", "--synthetic-train", "4096",
            "--synthetic-val", "256", "--batch-size", "32", "--augment", "--accum-steps", "2",
            "--checkpoint-every", "1", "--device", "cpu", "--seed", "3")


@dataclass
class Counts:
    kills: int = 0
    kills_during_save: int = 0
    kills_during_periodic: int = 0  # of those, during a periodic checkpoint (after best_model.pth)
    kills_after_end: int = 0  # landed once the run had written its report: complete, nothing to resume
    resumes: int = 0
    failures: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures += 1
        self.problems.append(message)


def child_env() -> dict[str, str]:
    # One thread, as in the reference run: equal thread counts give bit-identical results.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tui_trainer", *args], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def run_args(run_dir: Path, epochs: int) -> list[str]:
    return ["run", *RUN_ARGS, "--epochs", str(epochs), "--run-dir", str(run_dir), "--headless"]


def saving(run_dir: Path, pid: int, prefix: str = ".") -> bool:
    """True while process `pid` is writing a checkpoint (its temporary file exists); prefix
    ".checkpoint_epoch_": only a periodic checkpoint."""
    mark = f".pth.tmp-{pid}-"
    try:
        return any(mark in name and name.startswith(prefix) for name in os.listdir(run_dir))
    except OSError:
        return False


def kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def report_done(run_dir: Path, epochs: int) -> bool:
    try:
        report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return report.get("status") == "finished" and report.get("epochs_completed") == epochs


def check_after_kill(run_dir: Path, counts: Counts, what: str) -> None:
    """The newest checkpoint must be whole, and something must be resumable."""
    from tui_trainer.engine import checkpoint as ckpt
    from tui_trainer.errors import CheckpointError

    for name in ("last.pth", "best_model.pth"):
        if (run_dir / name).exists():
            try:
                ckpt.load_run_checkpoint(run_dir / name)
            except CheckpointError as exc:
                counts.fail(f"{what}: {name} is not loadable after the kill: {exc}")
    try:
        ckpt.find_resumable(run_dir)
    except CheckpointError as exc:
        counts.fail(f"{what}: nothing to resume from: {exc}")


def logged_since(run_dir: Path, offset: int, text: bytes) -> bool:
    """True once events.jsonl, past byte `offset` (where this process began), contains `text`."""
    try:
        with open(run_dir / "events.jsonl", "rb") as fh:
            fh.seek(offset)
            return text in fh.read()
    except OSError:
        return False


def events_size(run_dir: Path) -> int:
    try:
        return (run_dir / "events.jsonl").stat().st_size
    except OSError:
        return 0


def first_epoch_seconds(run_dir: Path) -> float:
    for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        if '"event":"EpochEnd"' in line:
            return float(json.loads(line)["epoch_time"])
    return 1.0


MODES = ("save", "startup", "periodic", "training")
PERIODIC = ".checkpoint_epoch_"


def torture(workdir: Path, kills: int, epochs: int = 6, seed: int = 0, reference: Path | None = None,
            log=print) -> Counts:
    """Run, kill, resume until `kills` kills are done (or the run finished), then let it finish;
    check everything after each kill and at the end.

    Kill moments, in turn: during the process's first checkpoint write; at a random moment of
    its start-up (torch loading, reading the checkpoint, building data and model); during its
    first periodic checkpoint write (after best_model.pth, before last.pth); at a random moment within 1.5 epochs of training starting (training, validation,
    saves). The last tenth of the kills wait for the final report and land within 2 ms of its
    start (the best model read back, report.json, the end of the log: a few milliseconds). A kill costs at most about one
    epoch of progress, so a run of kills/2 + 4 epochs outlasts the kills."""
    rng = random.Random(seed)
    run_dir = workdir / "run"
    counts = Counts()
    late = max(1, kills // 10) if kills > 1 else 0
    startup, epoch_seconds = 4.0, 1.0  # measured on the first process
    first = True
    while True:
        offset = events_size(run_dir)
        proc = spawn(run_args(run_dir, epochs) if first else ["resume", str(run_dir), "--headless"])
        started = time.monotonic()
        if not first:
            counts.resumes += 1
        if counts.kills < kills:
            mode = "late" if counts.kills >= kills - late else MODES[counts.kills % len(MODES)]
            if first:  # nothing to resume from before the first checkpoint: wait for one
                while not (run_dir / "last.pth").exists() and proc.poll() is None:
                    if not logged_since(run_dir, offset, b'"event":"RunStarted"'):
                        startup = time.monotonic() - started
                    time.sleep(0.002)
                epoch_seconds = first_epoch_seconds(run_dir) if proc.poll() is None else epoch_seconds
            deadline = started + (rng.uniform(0.05, startup) if mode == "startup" else 600)
            during_save = False
            while proc.poll() is None and time.monotonic() < deadline:
                if mode in ("save", "periodic") and saving(run_dir, proc.pid, PERIODIC if mode == "periodic" else "."):
                    during_save = True
                    break
                if mode == "training" and deadline - started > 500 and \
                        logged_since(run_dir, offset, b'"event":"RunStarted"'):
                    deadline = time.monotonic() + rng.uniform(0, 1.5 * epoch_seconds)
                if mode == "late" and logged_since(run_dir, offset, b'"stage":"evaluating"'):
                    time.sleep(rng.uniform(0, 0.002))
                    break
                time.sleep(0.0005 if mode in ("save", "periodic", "late") else 0.002)
            if proc.poll() is None:
                kill(proc)
                counts.kills += 1
                during_save = during_save and saving(run_dir, proc.pid)  # still there: killed mid-write
                counts.kills_during_save += during_save
                counts.kills_during_periodic += during_save and saving(run_dir, proc.pid, PERIODIC)
                what = f"kill {counts.kills} ({'during a checkpoint write' if during_save else mode}, " \
                       f"{time.monotonic() - started:.2f}s into the process)"
                check_after_kill(run_dir, counts, what)
                log(f"  {what}")
                first = False
                if report_done(run_dir, epochs):
                    counts.kills_after_end += 1
                    break  # killed after the report was written: the run is complete
                continue
        out, err = proc.communicate()
        first = False
        if proc.returncode != 0:
            counts.fail(f"a run exited {proc.returncode} on its own:\n{out[-1500:]}\n{err[-1500:]}")
            if counts.failures > 3:
                break
            continue
        break
    check_finished(run_dir, epochs, counts, reference)
    return counts


def check_finished(run_dir: Path, epochs: int, counts: Counts, reference: Path | None) -> None:
    if not report_done(run_dir, epochs):
        counts.fail("the run did not end with a valid report.json (status finished, all epochs)")
    leftovers = [n for n in os.listdir(run_dir) if ".tmp-" in n]
    if leftovers:
        counts.fail(f"temporary files left behind: {leftovers}")
    if reference is None:
        return
    import torch

    from tui_trainer.engine import checkpoint as ckpt
    from tui_trainer.events import EpochEnd, read_events

    mine = ckpt.load_run_checkpoint(run_dir / "last.pth")["model_state_dict"]
    theirs = ckpt.load_run_checkpoint(reference / "last.pth")["model_state_dict"]
    if mine.keys() != theirs.keys() or not all(torch.equal(mine[k], theirs[k]) for k in mine):
        counts.fail("final weights differ from the uninterrupted run")

    def metrics(path: Path) -> dict[int, tuple]:
        # An epoch redone after a kill is logged again; the last record of each epoch counts.
        return {e.epoch: (e.train_loss, e.train_acc, e.val_loss, e.val_acc, e.lr, e.is_best)
                for e in read_events(path / "events.jsonl") if isinstance(e, EpochEnd)}

    if metrics(run_dir) != metrics(reference):
        counts.fail("per-epoch metrics differ from the uninterrupted run")
    check_history(run_dir, reference, counts)
    check_periodic(run_dir, reference, epochs, counts)


def check_history(run_dir: Path, reference: Path, counts: Counts) -> None:
    """The whole history - losses, accuracies and the LR of every epoch - in report.json and in
    last.pth, as the uninterrupted run recorded it."""
    from tui_trainer.engine import checkpoint as ckpt

    def report_history(path: Path) -> dict | None:
        try:
            return json.loads((path / "report.json").read_text(encoding="utf-8"))["history"]
        except (OSError, ValueError, KeyError):
            return None

    if report_history(run_dir) != report_history(reference) or report_history(run_dir) is None:
        counts.fail("report.json's history (losses, accuracies, LRs) differs from the uninterrupted run")
    mine = ckpt.load_run_checkpoint(run_dir / "last.pth")["history"]
    if mine != ckpt.load_run_checkpoint(reference / "last.pth")["history"]:
        counts.fail("last.pth's history differs from the uninterrupted run")


def periodic_epochs(run_dir: Path, epochs: int) -> list[int]:
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    every = int(config.get("checkpoint_every") or 0)
    return [e for e in range(1, epochs + 1) if every and e % every == 0]


def check_periodic(run_dir: Path, reference: Path, epochs: int, counts: Counts) -> None:
    """Every periodic checkpoint the run promised exists, with the uninterrupted run's weights."""
    import torch

    from tui_trainer.engine import checkpoint as ckpt
    from tui_trainer.errors import CheckpointError

    missing, different = [], []
    for epoch in periodic_epochs(run_dir, epochs):
        name = f"checkpoint_epoch_{epoch}.pth"
        try:
            mine = ckpt.load_run_checkpoint(run_dir / name)
        except CheckpointError:
            missing.append(epoch)
            continue
        theirs = ckpt.load_run_checkpoint(reference / name)
        a, b = mine["model_state_dict"], theirs["model_state_dict"]
        if mine["epoch"] != epoch or a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a) \
                or mine["history"] != theirs["history"]:
            different.append(epoch)
    if missing:
        counts.fail(f"periodic checkpoints missing or unloadable for epochs {missing}")
    if different:
        counts.fail(f"periodic checkpoints differ from the uninterrupted run for epochs {different}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=60, help="SIGKILLs to deliver (default 60)")
    parser.add_argument("--epochs", type=int, help="epochs of the tortured run (default: half the kills "
                        "plus 4, at least 6: a kill costs at most about one epoch of progress)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the kill moments")
    parser.add_argument("--keep", help="keep the run directories in this folder")
    args = parser.parse_args(argv)
    args.epochs = args.epochs or max(6, args.kills // 2 + 4)
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="tui-trainer-torture-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        reference = workdir / "reference"
        print(f"reference run ({args.epochs} epochs, no interruption) ...", flush=True)
        done = subprocess.run([sys.executable, "-m", "tui_trainer", *run_args(reference / "run", args.epochs)],
                              env=child_env(), capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
            return 1
        print(f"torture run: {args.kills} kills ...", flush=True)
        t0 = time.monotonic()
        (workdir / "tortured").mkdir(exist_ok=True)
        counts = torture(workdir / "tortured", args.kills, args.epochs, args.seed, reference / "run",
                         log=lambda line: print(line, flush=True))
        print(f"\nkills {counts.kills} ({counts.kills_during_save} during a checkpoint write, "
              f"{counts.kills_during_periodic} of them of a periodic one, {counts.kills_after_end} after the end), "
              f"resumes {counts.resumes}, failures {counts.failures}  [{time.monotonic() - t0:.0f}s]")
        for problem in counts.problems:
            print(f"  FAILURE: {problem}")
        return 1 if counts.failures else 0
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
