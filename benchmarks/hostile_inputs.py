"""Hostile and damaged inputs: every case as a real `tui-trainer` process, as a table.

    python benchmarks/hostile_inputs.py              # every case (a few minutes on 2 cores)
    python benchmarks/hostile_inputs.py -k pickle    # the cases whose input mentions "pickle"

Each case plants something in a copy of a finished run (a link, a pickle, a damaged checkpoint,
config.json or events.jsonl, a full disk) or passes input that cannot work, runs the command a
user would, and checks what the user gets: the exit code, one line on stderr and never a
traceback, the run directory unchanged byte for byte after a refusal (hashed, links not
followed), a link's target untouched, nothing created by a run that never started. Full-disk
cases mount a small tmpfs (root only; otherwise they are reported as skipped).

Prints a Markdown table, one row per case: input | expected | observed | ok, then the counts. Exit status 1 if a
case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from _hostile import (ROOT, TINY, VICTIM, Case, Check, Result, Skip, cli, digest, env, fill, in_terminal, small_disk,
                      whole_lines)

# ----------------------------------------------------------------------------- set-ups
TEMPLATE: dict[str, Path] = {}


def finished(case_dir: Path) -> Path:
    return Path(shutil.copytree(TEMPLATE["run"], case_dir / "run", symlinks=True))


def resumable(run_dir: Path, epochs: int = 4) -> Path:
    config = json.loads((run_dir / "config.json").read_text())
    config["epochs"] = epochs
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "report.json").unlink()
    return run_dir


def refusal(case_dir: Path, args: list, says: str, prepare: Callable[[Path], None] | None = None,
            terminal: bool = False) -> Check:
    """A command that must be refused: exit 2, one line, no traceback, nothing changed anywhere."""
    if prepare is not None:
        prepare(case_dir)
    victim = case_dir / "victim.txt"
    before = digest(case_dir)
    result = in_terminal(args, case_dir, timeout=60) if terminal else cli(args, case_dir)
    c = Check(result).code(2).no_traceback()
    if terminal:
        c.expect(b"\x1b[?1049h".decode() not in result.out, "no console opened")
        c.expect(result.out.count("tui-trainer: error: ") == 1 and says in result.out, f"one line '{says}'")
    else:
        c.one_line(says)
    c.expect(digest(case_dir) == before, "nothing changed")
    if victim.exists():
        c.expect(victim.read_text() == VICTIM, "link target untouched")
    return c


def plant_link(name: str) -> Callable[[Path], None]:
    def prepare(case_dir: Path) -> None:
        run = finished(case_dir)
        (case_dir / "victim.txt").write_text(VICTIM)
        (run / name).unlink()
        (run / name).symlink_to(case_dir / "victim.txt")
    return prepare


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant_pickle(kind: str) -> Callable[[Path], Check]:
    def run(case_dir: Path) -> Check:
        import torch

        run_dir = finished(case_dir)
        marker = case_dir / "payload-ran"
        data = {"format": "tui-trainer/checkpoint", "epoch": 9, "payload": _Payload(marker)}
        target = run_dir / "last.pth"
        if kind == "legacy":
            torch.save(data, target, _use_new_zipfile_serialization=False)
        elif kind == "raw":
            target.write_bytes(pickle.dumps(data, protocol=4))
        else:
            torch.save(data, target)
        c = refusal(case_dir, ["resume", run_dir, "--headless", "--epochs", "4"], "it references posix.system")
        c.expect(c.r.err.rstrip().endswith("replace it with a trusted copy"), "complete line")
        return c.expect(not marker.exists(), "payload not run")
    return run


def rewrite_checkpoint(name: str, all_files: bool = False, **changes) -> Callable[[Path], Check]:
    def run(case_dir: Path) -> Check:
        import torch

        run_dir = finished(case_dir)
        for path in (run_dir.glob("*.pth") if all_files else [run_dir / name]):
            data = torch.load(path, weights_only=True)
            data.update(changes)
            torch.save(data, path)
        if all_files:
            return refusal(case_dir, ["resume", run_dir, "--headless", "--epochs", "3"], "no valid checkpoint in")
        result = cli(["resume", run_dir, "--headless", "--epochs", "3"], case_dir)
        warned = [line for line in result.out.splitlines() if line.startswith(f"warning: skipping {name}")]
        return Check(result).code(0).no_traceback().expect(len(warned) == 1, f"'{name}' skipped by name",
                                                           result.out[-300:])
    return run


def damage_config(text: str) -> Callable[[Path], Check]:
    def run(case_dir: Path) -> Check:
        run_dir = finished(case_dir)
        if text.startswith("epochs="):
            data = json.loads((run_dir / "config.json").read_text())
            data["epochs"] = json.loads(text.split("=", 1)[1])
            (run_dir / "config.json").write_text(json.dumps(data))
        else:
            (run_dir / "config.json").write_text(text)
        return refusal(case_dir, ["resume", run_dir, "--headless"], "is not a valid run config")
    return run


DAMAGED_LINES = {
    "a non-UTF-8 line": b"\xff\xfe\xc3\x28 not UTF-8\n",
    "a line of 200,000 '['": b"[" * 200_000 + b"\n",
    "train_loss \"abc\"": b'{"event":"EpochEnd","epoch":2,"num_epochs":2,"train_loss":"abc","train_acc":1,"val_loss":1,'
                          b'"val_acc":1,"lr":0.1,"epoch_time":1,"train_time":1,"val_time":1,"samples_per_sec":1,'
                          b'"is_best":true,"best_epoch":1,"best_val_acc":1,"t":1}\n',
    "num_epochs \"many\"": b'{"event":"RunStarted","num_epochs":"many"}\n',
    "an EpochEnd of epoch 1e9": b'{"event":"EpochEnd","epoch":1000000000,"num_epochs":1000000000,"train_loss":1,'
                                b'"train_acc":1,"val_loss":1,"val_acc":1,"lr":0.1,"epoch_time":1,"train_time":1,'
                                b'"val_time":1,"samples_per_sec":1,"is_best":true,"best_epoch":1,"best_val_acc":1,'
                                b'"t":1}\n',
    "a 20 MB line": b'{"event":"Notice","level":"info","message":"' + b"x" * 20_000_000 + b'"}\n',
}


def damaged_log(lines: list[bytes]) -> Callable[[Path], Check]:
    def run(case_dir: Path) -> Check:
        run_dir = finished(case_dir)
        whole = (run_dir / "events.jsonl").read_bytes().splitlines(keepends=True)
        (run_dir / "events.jsonl").write_bytes(b"".join(whole[:5] + lines + whole[5:]))
        result = cli(["show", run_dir], case_dir)
        n = len(lines)
        return Check(result).code(0).no_traceback().expect(
            f"warning: skipped {n} unreadable line{'s' if n > 1 else ''}" in result.out, f"'skipped {n}' said",
            result.out[-200:]).expect("run finished after 2 epochs" in result.out, "the rest shown")
    return run


def damaged_log_in_console(case_dir: Path) -> Check:
    run_dir = finished(case_dir)
    whole = (run_dir / "events.jsonl").read_bytes().splitlines(keepends=True)
    (run_dir / "events.jsonl").write_bytes(b"".join(whole[:5] + list(DAMAGED_LINES.values()) + whole[5:]))

    def look_then_quit(run) -> None:
        run.wait_for(b"FINISHED", timeout=60)  # a finished run opens on its report
        time.sleep(0.5)
        run.send(b"d")  # the dashboard, whose events panel names the skipped lines
        run.wait_for(b"unreadable", timeout=30)
        run.send(b"q")

    result = in_terminal(["show", run_dir], case_dir, look_then_quit, timeout=60)
    return Check(result).code(0).no_traceback().expect("unreadable" in result.out, "skipped lines named on screen")


def full_disk_at_start(case_dir: Path) -> Check:
    disk = case_dir / "disk"
    small_disk(disk, "4m")
    try:
        filler = fill(disk)
        c = Check(cli(["run", "synthetic", *TINY, "--epochs", "1", "--run-dir", disk / "runs" / "run", "--headless"],
                      case_dir)).code(2).no_traceback().one_line("No space left on device")
        return c.expect(os.listdir(disk) == [filler.name], "no runs/, no .lock left")
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def full_disk_during_resume(case_dir: Path) -> Check:
    disk = case_dir / "disk"
    small_disk(disk, "32m")
    try:
        run_dir = resumable(Path(shutil.copytree(TEMPLATE["run"], disk / "run")))
        filler = fill(disk)
        result = cli(["resume", run_dir, "--headless"], case_dir)
        failures = [line for line in result.out.splitlines() if line.startswith("error: ")]
        c = Check(result).code(1).no_traceback().expect(
            len(failures) == 1 and "No space left on device; the previous checkpoint is intact" in failures[0]
            and result.err == "", "one line 'No space left on device'", result.out[-300:])
        c.expect(whole_lines(run_dir / "events.jsonl"), "events.jsonl whole lines")
        filler.unlink()
        again = cli(["resume", run_dir, "--headless"], case_dir)
        return c.expect(again.code == 0 and whole_lines(run_dir / "events.jsonl"), "resumes once there is space")
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def torn_tail(case_dir: Path) -> Check:
    run_dir = resumable(finished(case_dir), 3)
    whole = (run_dir / "events.jsonl").read_bytes()
    with open(run_dir / "events.jsonl", "ab") as fh:
        fh.write(b'{"event":"EpochEnd","epoch":2,"num_epo')
    result = cli(["resume", run_dir, "--headless"], case_dir)
    data = (run_dir / "events.jsonl").read_bytes()
    return Check(result).code(0).no_traceback().expect(
        data.startswith(whole) and whole_lines(run_dir / "events.jsonl"), "torn line cut, every line whole")


def sigterm_while_preparing(case_dir: Path) -> Check:
    run_dir = case_dir / "run"
    proc = subprocess.Popen([sys.executable, "-m", "tui_trainer", "run", "synthetic", "--model", "mlp",
                             "--synthetic-shape", "3x8x8", "--synthetic-train", "20000", "--batch-size", "16",
                             "--epochs", "1000000", "--scheduler", "onecycle", "--device", "cpu",
                             "--run-dir", str(run_dir), "--headless"], cwd=case_dir, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60 and proc.poll() is None:
        try:
            if '"stage":"building model"' in (run_dir / "events.jsonl").read_text():
                break
        except OSError:
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    took = time.monotonic() - sent
    c = Check(Result(proc.returncode, out, err, took)).code(143).no_traceback()
    return c.expect(took < 10, "stopped within 10 s", f"{took:.1f}s")


def finished_report_hangup(case_dir: Path) -> Check:
    run_dir = case_dir / "run"

    def hang_up_on_the_report(run) -> None:
        run.wait_for(b"FINISHED", timeout=90)
        time.sleep(1.0)
        run.close_terminal()

    result = in_terminal(["run", "synthetic", "--model", "mlp", "--synthetic-shape", "1x8x8", "--synthetic-train",
                          "256", "--synthetic-val", "64", "--epochs", "1", "--run-dir", run_dir], case_dir,
                         hang_up_on_the_report, timeout=30)
    return Check(result).code(0)


def run_name_escaped(case_dir: Path) -> Check:
    result = cli(["run", "synthetic", *TINY, "--epochs", "1", "--run-dir", "run\nforged\x1b[2J", "--headless"], case_dir)
    return Check(result).code(0).expect("\x1b" not in result.out and "run\\nforged\\x1b[2J" in result.out,
                                        "shown as run\\nforged\\x1b[2J")


def on_nan_skip(case_dir: Path) -> Check:
    result = cli(["run", "synthetic", *TINY, "--epochs", "1", "--lr", "1e30", "--on-nan", "skip", "--run-dir", "run",
                  "--headless"], case_dir)
    return Check(result).code(1).no_traceback().expect(
        "non-finite loss" in result.out and "--on-nan skip" not in result.out + result.err, "no --on-nan skip hint")


def nothing_created(args: list, says: str) -> Callable[[Path], Check]:
    def run(case_dir: Path) -> Check:
        c = Check(cli(args, case_dir)).code(2).no_traceback().one_line(says)
        return c.expect(os.listdir(case_dir) == [], "nothing created")
    return run


def link_to_run_dir(case_dir: Path) -> Check:
    (case_dir / "storage").mkdir()
    (case_dir / "run").symlink_to(case_dir / "storage", target_is_directory=True)
    first = cli(["run", "synthetic", *TINY, "--epochs", "1", "--run-dir", "run", "--headless"], case_dir)
    then = cli(["resume", "run", "--headless", "--epochs", "2"], case_dir)
    return Check(then).expect(first.code == 0 and then.code == 0, "run and resume exit 0").expect(
        (case_dir / "storage" / "report.json").is_file(), "written in the link's target")


def no_gpu() -> str:
    import torch

    return "cuda" if not torch.cuda.is_available() else "mps"


# ----------------------------------------------------------------------------- the cases
def cases() -> list[Case]:
    r = "resume run --headless --epochs 3"
    links = [Case(f"{name} a symlink; {r}", "exit 2, one line, target untouched",
                  lambda d, n=name: refusal(d, ["resume", "run", "--headless", "--epochs", "3"],
                                            "it is a symbolic link", plant_link(n)))
             for name in (".lock", "events.jsonl", "config.json", "report.json", "last.pth", "checkpoint_epoch_1.pth")]

    def special(kind: str) -> Callable[[Path], None]:
        def prepare(d: Path) -> None:
            run = finished(d)
            (d / "victim.txt").write_text(VICTIM)
            (run / "events.jsonl").unlink()
            if kind == "hard":
                os.link(d / "victim.txt", run / "events.jsonl")
            else:
                os.mkfifo(run / "events.jsonl")
        return prepare

    def empty_with_lock_link(d: Path) -> None:
        (d / "run").mkdir()
        (d / "victim.txt").write_text(VICTIM)
        (d / "run" / ".lock").symlink_to(d / "victim.txt")

    return links + [
        Case(f"events.jsonl a hard link; {r}", "exit 2, one line, target untouched",
             lambda d: refusal(d, ["resume", "run", "--headless", "--epochs", "3"], "hard links", special("hard"))),
        Case(f"events.jsonl a named pipe; {r}", "exit 2 at once (no hang)",
             lambda d: refusal(d, ["resume", "run", "--headless", "--epochs", "3"], "not a regular file", special("fifo"))),
        Case("empty run dir, .lock a symlink; run", "exit 2, one line, target untouched",
             lambda d: refusal(d, ["run", "synthetic", *TINY, "--epochs", "1", "--run-dir", "run", "--headless"],
                               "it is a symbolic link", empty_with_lock_link)),
        Case("the run directory itself a symlink; run, resume", "both exit 0", link_to_run_dir),
        Case("last.pth a legacy-format torch pickle (posix.system)", "exit 2 naming posix.system, payload not run",
             plant_pickle("legacy")),
        Case("last.pth a raw pickle (posix.system)", "exit 2 naming posix.system, payload not run", plant_pickle("raw")),
        Case("last.pth a zip checkpoint with pickled code", "exit 2 naming posix.system, one complete line",
             plant_pickle("zip")),
        Case("resume a finished run (log)", "exit 2, nothing changed",
             lambda d: refusal(d, ["resume", "run", "--headless"], "already completed 2 epochs", finished)),
        Case("resume a finished run (terminal)", "exit 2, no console, nothing changed",
             lambda d: refusal(d, ["resume", "run"], "already completed 2 epochs", finished, terminal=True)),
        Case("resume FINISHED --epochs 2 (terminal)", "exit 2, config.json unchanged",
             lambda d: refusal(d, ["resume", "run", "--epochs", "2"], "already completed", finished, terminal=True)),
        Case("resume --epochs 20 --device <no GPU>", "exit 2, config.json unchanged",
             lambda d: refusal(d, ["resume", "run", "--headless", "--epochs", "20", "--device", no_gpu()],
                               "available here", finished)),
        Case("run --seed 4294967296", "exit 2, nothing created",
             nothing_created(["run", "synthetic", "--seed", "4294967296", "--headless"], "--seed must be at most")),
        Case("run --synthetic-classes 1000000000", "exit 2, nothing created",
             nothing_created(["run", "synthetic", "--synthetic-classes", "1000000000", "--headless"], "at most 1,000")),
        Case("run --synthetic-train 10000000000", "exit 2, nothing created",
             nothing_created(["run", "synthetic", "--synthetic-train", "10000000000", "--headless"], "at most")),
        Case("run --synthetic-train 1000000000", "exit 2 with the memory needed",
             nothing_created(["run", "synthetic", "--synthetic-train", "1000000000", "--headless"], "TB of memory")),
        Case("run --synthetic-shape 3x100000x100000", "exit 2 with the memory needed",
             nothing_created(["run", "synthetic", "--synthetic-shape", "3x100000x100000", "--headless"], "of memory")),
        Case("run --epochs 100000000", "exit 2, nothing created",
             nothing_created(["run", "synthetic", "--epochs", "100000000", "--headless"], "at most 1,000,000")),
        Case("run --device <no GPU> --run-dir runs/x", "exit 2, no runs/ left",
             lambda d: nothing_created(["run", "synthetic", *TINY[:-4], "--device", no_gpu(), "--run-dir", "runs/x",
                                        "--headless"], "available here")(d)),
        Case("run on a full disk", "exit 2, no DIR/.lock left", full_disk_at_start),
        Case("best_model.pth epoch 'x' (not the newest)", "exit 0, skipped by name",
             rewrite_checkpoint("best_model.pth", epoch="x")),
        Case("checkpoint_epoch_1.pth epoch None", "exit 0, skipped by name",
             rewrite_checkpoint("checkpoint_epoch_1.pth", epoch=None)),
        Case("last.pth format_version '2'", "exit 0, skipped by name", rewrite_checkpoint("last.pth", format_version="2")),
        Case("last.pth config a string", "exit 0, skipped by name", rewrite_checkpoint("last.pth", config="a string")),
        Case("every checkpoint epoch 'x'", "exit 2, nothing changed", rewrite_checkpoint("", all_files=True, epoch="x")),
        Case("config.json []", "exit 2, nothing changed", damage_config("[]")),
        Case("config.json null", "exit 2, nothing changed", damage_config("null")),
        Case("config.json a string", "exit 2, nothing changed", damage_config('"a string"')),
        Case("config.json epochs 1e30", "exit 2, nothing changed", damage_config("epochs=1e30")),
        Case("config.json epochs 10**30", "exit 2 at once", damage_config(f"epochs={10**30}")),
        *[Case(f"events.jsonl with {what}; show", "exit 0, 'skipped 1 unreadable line'", damaged_log([line]))
          for what, line in DAMAGED_LINES.items()],
        Case("events.jsonl with all of the above; show in a terminal", "exit 0 on q, no traceback",
             damaged_log_in_console),
        Case("full disk during resume", "exit 1, one line, whole lines", full_disk_during_resume),
        Case("events.jsonl with a torn last line; resume", "exit 0, torn line cut", torn_tail),
        Case("SIGTERM while a 1,000,000-epoch onecycle run prepares", "exit 143 within 10 s", sigterm_while_preparing),
        Case("--lr 1e30 --on-nan skip", "exit 1, no '--on-nan skip' hint", on_nan_skip),
        Case("--run-dir 'run\\nforged\\x1b[2J'", "exit 0, name escaped in the log", run_name_escaped),
        Case("terminal closed on a finished run's report", "exit 0", finished_report_hangup),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="only", help="only the cases whose input contains this text")
    parser.add_argument("--keep", help="keep the case directories in this folder")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="tui-trainer-hostile-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        template = workdir / "template"
        made = cli(["run", "synthetic", *TINY, "--epochs", "2", "--checkpoint-every", "1", "--run-dir",
                    template / "run", "--headless"], workdir)
        if made.code != 0:
            print(made.out[-2000:], made.err[-2000:], file=sys.stderr)
            return 1
        TEMPLATE["run"] = template / "run"
        selected = [c for c in cases() if not args.only or args.only.lower() in c.input.lower()]
        rows, failures, skipped = [], 0, 0
        t0 = time.monotonic()
        for i, case in enumerate(selected):
            case_dir = workdir / f"case-{i:02d}"
            case_dir.mkdir()
            try:
                check = case.run(case_dir)
                ok, observed = check.ok, check.observed
            except Skip as why:
                ok, observed = None, f"skipped: {why}"
            except Exception as exc:  # noqa: BLE001 - a broken case is a failure, reported in its row
                ok, observed = False, f"{type(exc).__name__}: {exc}"[:200]
            failures += ok is False
            skipped += ok is None
            rows.append((case.input, case.expected, observed, {True: "ok", False: "FAIL", None: "skip"}[ok]))
            print(f"  [{i + 1}/{len(selected)}] {rows[-1][3]:<4} {case.input}", file=sys.stderr, flush=True)
        print("| input | expected | observed | ok |")
        print("| --- | --- | --- | --- |")
        for row in rows:
            print("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in row) + " |")
        print(f"\ncases {len(rows)}, failures {failures}, skipped {skipped}  [{time.monotonic() - t0:.0f}s]")
        return 1 if failures else 0
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
