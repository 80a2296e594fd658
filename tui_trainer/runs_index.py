"""Runs on disk, as `ls`, `attach` and `ctl` see them: which directory a RUN argument names, and
how each run stands, read from its events.jsonl (the same reducer as every view) and its lock.

A run whose process holds the lock is running (or paused, starting, stopping); one whose lock is
free and whose record has an end ended so; one whose lock is free with no end recorded is
crashed (killed, or the machine went down), and `tui-trainer resume DIR` continues it (when it
saved a checkpoint before it died). Nothing
here writes, and every file is opened without following a symlink. No torch, no Textual.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import UserError
from .frontends.follow import EventsFollower
from .runlog import CONFIG_NAME, EVENTS_NAME, LOCK_NAME
from .state import RunState, reduce
from .vocab import Status

RUNS_ROOT = Path("runs")


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / EVENTS_NAME).is_file() or (path / CONFIG_NAME).is_file())


def run_dirs(root: Path) -> list[Path]:
    try:
        children = list(os.scandir(root))
    except OSError:
        return []
    return [Path(entry.path) for entry in children
            if entry.is_dir(follow_symlinks=False) and is_run_dir(Path(entry.path))]


def started_at(run_dir: Path) -> float:
    """When the run began: its first event's time, else its config.json's mtime."""
    try:
        fd = os.open(run_dir / EVENTS_NAME, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            first = os.read(fd, 65536).split(b"\n", 1)[0]
        finally:
            os.close(fd)
        from .event_io import parse_event_line

        return float(parse_event_line(first).t)
    except (OSError, ValueError, IndexError):
        pass
    for name in (CONFIG_NAME, EVENTS_NAME):
        try:
            return os.stat(run_dir / name, follow_symlinks=False).st_mtime
        except OSError:
            continue
    return 0.0


def resolve_run(arg: str | None, root: Path = RUNS_ROOT) -> Path:
    """RUN as the commands take it: a run directory, a run's name under runs/, or nothing for
    the most recently started run under runs/."""
    if arg is None:
        runs = run_dirs(root)
        if not runs:
            raise UserError(f"no runs under {root}/: name a run directory")
        return max(runs, key=started_at)
    path = Path(arg)
    if is_run_dir(path):
        return path
    if not path.is_absolute() and is_run_dir(root / path):
        return root / path
    if path.exists():
        raise UserError(f"{arg} is not a run directory (no {EVENTS_NAME} or {CONFIG_NAME} in it)")
    raise UserError(f"no run {arg}: neither a run directory nor a run under {root}/ (`tui-trainer ls` lists them)")


def has_checkpoint(run_dir: Path) -> bool:
    """Whether `tui-trainer resume` has a checkpoint to start from (it asks the same: any *.pth).
    A run killed before its first save has none, and no resume command to offer."""
    try:
        return any(entry.name.endswith(".pth") for entry in os.scandir(run_dir))
    except OSError:
        return False


def lock_pid(run_dir: Path) -> int | None:
    """The pid a running process wrote into its lock file."""
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        text = os.read(fd, 32).decode("ascii", errors="replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    return int(text) if text.isdigit() and 0 < int(text) < 1 << 31 else None


def read_state(run_dir: Path) -> tuple[RunState, bool]:
    """The run's state folded from its whole record, and whether a process still writes it."""
    follower = EventsFollower(run_dir)
    state = RunState()
    while True:  # a chunk at a time: memory stays bounded whatever the record's length
        before = follower.offset
        for event in follower.read():
            state = reduce(state, event)
        if follower.offset == before:
            return state, follower.live


@dataclass(frozen=True)
class RunEntry:
    name: str
    path: str
    status: str  # running | paused | starting | stopping | finished | early_stopped | stopped | interrupted | failed | crashed
    pid: int | None
    epoch: int
    epochs: int
    monitor: str
    best: float | None  # the monitored metric at the best epoch
    best_epoch: int
    started: float  # seconds since the epoch
    duration: float  # seconds, pauses included
    resume: str  # the command that continues it, where one would ("" without a checkpoint to start from)

    def to_dict(self) -> dict:
        return asdict(self)


def run_entry(run_dir: Path, now: float | None = None) -> RunEntry:
    state, alive = read_state(run_dir)
    now = time.time() if now is None else now
    if state.end is not None or state.run_status is Status.FAILED:
        status = state.run_status.value
    elif alive:
        status = {Status.PREPARING: "starting"}.get(state.run_status, state.run_status.value)
    else:
        status = "crashed"
    info = state.info
    monitor = info.monitor if info is not None else "val_loss"
    best = None
    if state.best_epoch in state.epochs_done:
        i = state.epochs_done.index(state.best_epoch)
        values = state.val_acc if monitor == "val_acc" else state.val_loss
        best = values[i] if i < len(values) else None
    started = state.first_t if state.first_t is not None else started_at(run_dir)
    end_t = now if alive and state.end is None else (state.last_t or started)
    resumable = status in ("crashed", "interrupted") and has_checkpoint(run_dir)
    resume = f"tui-trainer resume {shlex.quote(str(run_dir))}" if resumable else ""  # a command to copy
    epoch = state.epoch if alive and state.active else (state.epochs_done[-1] if state.epochs_done else 0)
    name = run_dir.name or run_dir.resolve().name  # `ls .` inside a run directory names it
    return RunEntry(name=name, path=str(run_dir), status=status, pid=lock_pid(run_dir) if alive else None,
                    epoch=epoch, epochs=state.num_epochs, monitor=monitor,
                    best=best, best_epoch=state.best_epoch, started=started, duration=max(0.0, end_t - started),
                    resume=resume)


def list_runs(root: Path = RUNS_ROOT) -> list[RunEntry]:
    """Every run under root, newest first."""
    entries = [run_entry(path) for path in run_dirs(root)]
    return sorted(entries, key=lambda e: e.started, reverse=True)
