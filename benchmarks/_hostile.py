"""Running `tui-trainer` as a process and checking what a user gets from it, for
hostile_inputs.py: exit code, one line, no traceback, a directory unchanged byte for byte."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "mlp", "--synthetic-shape", "3x8x8", "--synthetic-train", "512", "--synthetic-val", "128",
        "--batch-size", "32", "--device", "cpu", "--seed", "7"]
VICTIM = "a file outside the run directory that must never change\n"


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TERM="dumb",
             PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.update(extra)
    return e


@dataclass
class Result:
    code: int | None
    out: str
    err: str
    seconds: float


def cli(args: list, cwd: Path, timeout: float = 180) -> Result:
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "tui_trainer", *map(str, args)], cwd=cwd, env=env(),
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return Result(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
    except subprocess.TimeoutExpired as exc:
        return Result(None, exc.stdout or "", exc.stderr or "", time.monotonic() - t0)


def in_terminal(args: list, cwd: Path, until: Callable | None = None, timeout: float = 120) -> Result:
    """The command on a real pseudo-terminal (the live console's path). `until(run)` acts on it."""
    sys.path.insert(0, str(ROOT))
    from tui_trainer.testing import PtyRun

    t0 = time.monotonic()
    run = PtyRun([str(a) for a in args], cwd=cwd, env={"OMP_NUM_THREADS": "1", "PYTHONPATH": env()["PYTHONPATH"]})
    try:
        if until is not None:
            until(run)
        code = run.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, TimeoutError):
        code = None
    finally:
        run.kill()
    text = bytes(run.output).decode(errors="replace")
    return Result(code, text, "", time.monotonic() - t0)


def digest(root: Path) -> dict:
    """Every entry under root, links not followed: kind, mode, size, mtime, content hash / target."""
    found = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                found[str(p)] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                found[str(p)] = (st.st_mode, st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                found[str(p)] = (st.st_mode, st.st_mtime_ns)
    return found


# ----------------------------------------------------------------------------- checks
class Check:
    """Collects what was observed and whether each expectation held."""

    def __init__(self, result: Result) -> None:
        self.r, self.notes, self.ok = result, [], True

    def expect(self, condition: bool, note: str, bad: str = "") -> "Check":
        self.ok &= bool(condition)
        self.notes.append(note if condition else f"NOT {note}{': ' + bad if bad else ''}")
        return self

    def code(self, expected: int) -> "Check":
        return self.expect(self.r.code == expected, f"exit {expected}", f"exit {self.r.code}")

    def one_line(self, says: str = "", stream: str = "err") -> "Check":
        text = self.r.err if stream == "err" else self.r.out
        lines = [line for line in text.splitlines() if line.startswith(("tui-trainer: error", "error: "))]
        self.expect(len(text.splitlines() if stream == "err" else lines) == 1 and says in text,
                    f"one line '{says}'" if says else "one line", text.strip()[-200:])
        return self

    def no_traceback(self) -> "Check":
        return self.expect("Traceback" not in self.r.out + self.r.err, "no traceback")

    @property
    def observed(self) -> str:
        return f"{', '.join(self.notes)} ({self.r.seconds:.1f}s)"


@dataclass
class Case:
    input: str
    expected: str
    run: Callable[[Path], Check]


class Skip(Exception):
    pass


def small_disk(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        raise Skip("cannot mount a tmpfs (needs root)")


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for size in (1 << 20, 4096, 1):
        while True:
            try:
                os.write(fd, b"\0" * size)
            except OSError:
                break
    os.close(fd)
    return filler


def whole_lines(path: Path) -> bool:
    sys.path.insert(0, str(ROOT))
    from tui_trainer.event_io import read_event_log

    return path.read_bytes().endswith(b"\n") and read_event_log(path)[1] == 0
