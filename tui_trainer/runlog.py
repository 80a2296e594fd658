"""The run directory: config.json, events.jsonl (every event, flushed as it happens), a lock.

No torch here: the CLI checks and claims the directory before anything heavy loads.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from pathlib import Path
from typing import IO, Callable

from . import events as ev
from .errors import UserError

LOCK_NAME = ".lock"
EVENTS_NAME = "events.jsonl"
CONFIG_NAME = "config.json"


def default_run_dir(dataset: str, model: str, root: str | os.PathLike = "runs") -> Path:
    """Create and return a new run directory named after the dataset, model and time.

    The name is claimed with mkdir, which fails if the directory exists: two runs started in
    the same second (or a directory left by an earlier run) get "-2", "-3", ... instead of
    sharing one. Raises OSError if `root` cannot be created or written."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{dataset}-{model}-{stamp}"
    Path(root).mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            n += 1


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_new_run_dir(path: Path) -> None:
    """Refuse a run directory that would overwrite anything or cannot be written (writes nothing)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"run directory {path} exists and is not a directory; choose another --run-dir")
    if path.is_dir():
        used = [p.name for p in path.iterdir() if p.name in (EVENTS_NAME, CONFIG_NAME) or p.suffix == ".pth"]
        if used:
            raise UserError(f"run directory {path} already holds a run ({', '.join(sorted(used)[:3])}); "
                            f"resume it with `tui-trainer resume {path}` or choose another --run-dir")
    anchor = _nearest_existing(path)
    if not anchor.is_dir():
        raise UserError(f"cannot create run directory {path}: {anchor} is not a directory")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {anchor}; choose a writable --run-dir")


class RunDirLock:
    """An exclusive flock on RUN_DIR/.lock: one writer per run directory. The kernel drops the
    lock when the process dies, so a killed run never leaves the directory locked."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, record_pid: bool = True) -> "RunDirLock":
        """Take the lock or raise UserError. record_pid=False leaves an existing lock file's bytes
        untouched until `record_pid()` (a resume that may still be refused changes nothing)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"cannot write to run directory {self.path.parent}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.read(fd, 32).decode(errors="replace").strip()
            finally:
                os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise UserError(f"run directory {self.path.parent} is in use by another tui-trainer process{who}") from None
        self._fd = fd
        if record_pid:
            self.record_pid()
        return self

    def record_pid(self) -> None:
        """Write our pid into the lock file, for the 'in use by pid N' message others get."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


TMP_MARK = ".tmp-"  # in the names of temporaries; a start cleans up any a crash left behind


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = False) -> Path:
    """Write a file so that `path` is always either the old or the new file, never a torn one:
    `write` fills a temporary in the same directory, which is fsynced and renamed over `path`,
    then the directory is fsynced. A failure (full disk, quota) raises and leaves the old file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def write_json_atomic(path: Path, data) -> None:
    def write(fh) -> None:
        json.dump(data, fh, indent=2)
        fh.write("\n")

    atomic_write(path, write)


class RunLog:
    """A sink appending every event to events.jsonl, one JSON object per line, flushed at once."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / EVENTS_NAME
        self._fh = open(self.path, "a", encoding="utf-8")

    def emit(self, event: ev.Event) -> None:
        if self._fh.closed:
            return
        self._fh.write(ev.to_json(event) + "\n")
        self._fh.flush()
        if type(event).__name__ in ev.TERMINAL_EVENTS:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
