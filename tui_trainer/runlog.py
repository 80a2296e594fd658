"""The run directory: config.json, events.jsonl (every event, flushed as it happens), a lock.

Every file tui-trainer writes inside a run directory is opened through `open_run_file` (or
written by `atomic_write`, which uses it): never through a symbolic link planted there, and
never into a hard-linked, special or directory entry. The run directory itself may be a link.

No torch here: the CLI checks and claims the directory before anything heavy loads.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import time
import uuid
from pathlib import Path
from typing import IO, Callable

from . import events as ev
from .errors import UnsafeRunFileError, UserError

LOCK_NAME = ".lock"
EVENTS_NAME = "events.jsonl"
CONFIG_NAME = "config.json"
REPORT_NAME = "report.json"
METRICS_CSV_NAME = "metrics.csv"


# ----------------------------------------------------------------------------- safe opening
def _refusal(path: Path, what: str) -> UnsafeRunFileError:
    return UnsafeRunFileError(f"refusing to write {path}: it {what}; tui-trainer writes only regular files of its "
                              "own in a run directory - move it away (and check who put it there)")


def _describe_entry(path: Path, st: os.stat_result) -> str | None:
    """Why an existing entry must not be written to, or None when it is a plain file of its own."""
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"is a symbolic link (to {target!r})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file (a device, pipe or socket)"
    if st.st_nlink > 1:
        return f"has {st.st_nlink} hard links (writing it would change every linked copy; copy the file to break them)"
    return None


def check_run_file(path: str | os.PathLike) -> None:
    """Refuse (UnsafeRunFileError) when `path` exists and is anything but a regular file with one
    link. Checked with lstat: a symbolic link is never followed."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    problem = _describe_entry(path, st)
    if problem:
        raise _refusal(path, problem)


def open_run_file(path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """os.open for a file inside a run directory, which never follows a symbolic link at `path`
    (O_NOFOLLOW), never blocks on a planted pipe, and refuses anything that is not a regular
    file with a single link. Returns the descriptor; raises UnsafeRunFileError or OSError."""
    path = Path(path)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EEXIST):
            try:
                st = os.lstat(path)
            except OSError:
                raise exc from None
            problem = _describe_entry(path, st)
            if problem:
                raise _refusal(path, problem) from None
        raise
    try:
        problem = _describe_entry(path, os.fstat(fd))
        if problem:
            raise _refusal(path, problem)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


RUN_FILE_PATTERNS = (LOCK_NAME, EVENTS_NAME, CONFIG_NAME, REPORT_NAME, METRICS_CSV_NAME, "experiment.py", "*.pth")


def check_run_files(run_dir: str | os.PathLike) -> None:
    """Refuse, before anything is written, a run directory holding a planted link or special
    entry under a name tui-trainer writes (lock, log, config, report, checkpoints)."""
    run_dir = Path(run_dir)
    try:
        names = sorted(os.listdir(run_dir))
    except OSError:
        return
    for name in names:
        if name in RUN_FILE_PATTERNS[:-1] or name.endswith(".pth"):
            check_run_file(run_dir / name)


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
    if path.is_symlink() and not path.exists():
        raise UserError(f"run directory {path} is a symbolic link to {os.readlink(path)!r}, which does not exist; "
                        "create that directory or choose another --run-dir")
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


def missing_dirs(run_dir: Path) -> list[Path]:
    """The directories creating `run_dir` makes, outermost first (empty when it exists)."""
    missing, path = [], run_dir.absolute()
    while not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing[::-1]


def remove_unstarted_run(run_dir: Path, existing: set[str], created: list[Path]) -> None:
    """A run that failed on bad input before training leaves nothing behind: the directories it
    created (runs/ too), or in a directory that was already there, the files it added."""
    try:
        entries = list(run_dir.iterdir())
    except OSError:
        return
    if any(p.suffix == ".pth" for p in entries):
        return
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        for parent in reversed(created[:-1]):
            try:
                parent.rmdir()  # only while empty: never anything someone else put there
            except OSError:
                break
        return
    for p in entries:
        if p.name not in existing and not p.is_dir():
            p.unlink(missing_ok=True)


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
            fd = open_run_file(self.path, os.O_RDWR | os.O_CREAT)
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
        """Write our pid into the lock file, for the 'in use by pid N' message others get (best
        effort: on a full disk the lock still holds, the message just names no pid)."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, str(os.getpid()).encode(), 0)
            except OSError:
                pass

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
    then the directory is fsynced. A failure (full disk, quota) raises and leaves the old file.
    A link or special file planted at `path` is refused (UnsafeRunFileError), never written."""
    path = Path(path)
    check_run_file(path)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    fd = open_run_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with open(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
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


def _cut_torn_tail(fd: int) -> int:
    """A crash (or a full disk) can leave a last line without its newline; the next event would be
    glued onto it and both lost. Cut the file back to its last complete line; returns the size."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    end = size
    chunk = 65536
    while end > 0:
        start = max(0, end - chunk)
        data = os.pread(fd, end - start, start)
        if end == size and data.endswith(b"\n"):
            return size  # whole: nothing to cut
        newline = data.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    os.ftruncate(fd, end)
    return end


class RunLog:
    """A sink appending every event to events.jsonl, one JSON object per line.

    Each line is written whole or not at all: a write that fails part-way (full disk) is cut
    back, and a torn last line a crash left is cut before the first append. Long epochs are
    thinned so that the file grows by a bounded amount per hour however long an epoch runs: the
    first STEP_LINES_PER_EPOCH progress events of an epoch and the first SYSTEM_LINES system
    samples are all kept (a run of short epochs is logged in full), later ones one per interval."""

    STEP_LINES_PER_EPOCH = 240  # a minute at the log's 4 a second
    STEP_LINE_INTERVAL = 10.0
    SYSTEM_LINES = 30  # a minute at one every 2 seconds
    SYSTEM_LINE_INTERVAL = 30.0

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / EVENTS_NAME
        self._fd: int | None = open_run_file(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            self._size = _cut_torn_tail(self._fd)
        except OSError:
            os.close(self._fd)
            raise
        self.dropped = 0  # events not written (a full disk); the run's own errors say why
        self.error: OSError | None = None
        self._step_lines: dict[int, int] = {}
        self._last_step_t = -float("inf")
        self._system_lines = 0
        self._last_system_t = -float("inf")
        self._ended = False

    @property
    def closed(self) -> bool:
        return self._fd is None

    def _keep(self, event: ev.Event) -> bool:
        if isinstance(event, ev.StepProgress):
            n = self._step_lines.get(event.epoch, 0)
            if n >= self.STEP_LINES_PER_EPOCH and event.t - self._last_step_t < self.STEP_LINE_INTERVAL:
                return False
            if len(self._step_lines) > 4:
                self._step_lines.clear()
            self._step_lines[event.epoch] = n + 1
            self._last_step_t = event.t
        elif isinstance(event, ev.SystemSample):
            if self._ended:
                return False  # a sample taken as the run ended: the run's end stays its last line
            if self._system_lines >= self.SYSTEM_LINES and event.t - self._last_system_t < self.SYSTEM_LINE_INTERVAL:
                return False
            self._system_lines += 1
            self._last_system_t = event.t
        return True

    def emit(self, event: ev.Event) -> None:
        if self._fd is None or not self._keep(event):
            return
        data = (ev.to_json(event) + "\n").encode("utf-8")
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            self.error, self.dropped = exc, self.dropped + 1
            try:
                os.ftruncate(self._fd, self._size)  # no half line for the next event to be glued to
            except OSError:
                pass
            return
        self._size += len(data)
        if type(event).__name__ in ev.TERMINAL_EVENTS:
            self._ended = True
            try:
                os.fsync(self._fd)
            except OSError:
                pass  # the line is written; a failed flush to disk cannot be undone here

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass
