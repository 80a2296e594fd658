"""Runs side by side (`tui-trainer compare`): each run's events.jsonl replayed through the same
reducer as `show`, followed while it trains, and the tables the headless view prints and the
console shows under its charts. No Textual, no torch.

Everything here is read from disk and untrusted: events are validated line by line
(`EventsFollower`), config.json is read without following a link, bounded, and shown escaped.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import events as ev
from . import fmt
from .errors import UserError
from .event_io import printable
from .frontends.follow import EventsFollower
from .runlog import CONFIG_NAME, EVENTS_NAME
from .state import RunState, reduce

MAX_CONFIG_BYTES = 1_000_000
MAX_VALUE_CHARS = 32
LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_RUNS = len(LABELS)
SKIPPED_KEYS = frozenset({"run_dir"})  # differs between any two runs; the name column says it
MAX_EPOCH_ROWS = 30


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / EVENTS_NAME).is_file()


def first_event_time(path: Path) -> float:
    """When a run started: its first event's time (a line read, no more); else the file's mtime."""
    events = path / EVENTS_NAME
    try:
        fd = os.open(events, os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, "rb") as fh:
            first = json.loads(fh.readline(1 << 16))
        t = first.get("t") if isinstance(first, dict) else None
        if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t):
            return float(t)
    except (OSError, ValueError, RecursionError):
        pass
    try:
        return events.stat().st_mtime
    except OSError:
        return 0.0


def resolve_runs(paths: list[str], last: int | None, root: str = "runs") -> list[Path]:
    """The run directories to compare: those named, or the `last` started most recently under root."""
    if last is not None:
        if paths:
            raise UserError("compare: give run directories or --last N, not both")
        if last < 2:
            raise UserError(f"compare --last {last}: compare needs at least two runs")
        try:
            found = [p for p in Path(root).iterdir() if is_run_dir(p)]
        except OSError:
            found = []
        if len(found) < 2:
            raise UserError(f"compare --last {last}: {len(found)} run{'s' if len(found) != 1 else ''} "
                            f"in {printable(root)}/ (give --root DIR, or the run directories); need at least two")
        runs = sorted(found, key=first_event_time)[-last:]
    else:
        runs = [Path(p) for p in paths]
        if len(runs) < 2:
            raise UserError("compare needs at least two run directories (or --last N)")
    if len(runs) > MAX_RUNS:
        raise UserError(f"compare shows at most {MAX_RUNS} runs; {len(runs)} given")
    for path in runs:
        if not path.is_dir():
            raise UserError(f"{printable(str(path))} is not a run directory (no such directory)")
        if not (path / EVENTS_NAME).is_file():
            raise UserError(f"{printable(str(path))} is not a run directory (no {EVENTS_NAME})")
    if len({p.resolve() for p in runs}) < len(runs):
        raise UserError("compare: the same run directory is given twice")
    return runs


def read_config(path: Path) -> dict:
    """config.json flattened (`settings.x` for nested keys); {} when missing or unreadable."""
    try:
        fd = os.open(path / CONFIG_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with open(fd, "rb") as fh:
            data = json.loads(fh.read(MAX_CONFIG_BYTES + 1)[:MAX_CONFIG_BYTES].decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    flat: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and len(flat) < 1000:
            for k, v in value.items():
                walk(f"{prefix}{k}" if not prefix else f"{prefix}.{k}", v)
        else:
            flat[prefix] = value
    if isinstance(data, dict):
        walk("", data)
    return flat


def config_value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        value = "x".join(str(v) for v in value) if all(isinstance(v, int) for v in value) else json.dumps(value)
    text = printable(str(value))
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"


@dataclass
class ComparedRun:
    """One run, replayed from its events.jsonl and kept up to date with `update()`."""

    path: Path
    label: str
    config: dict = field(default_factory=dict)
    state: RunState = field(default_factory=RunState)
    earlier: float = 0.0  # seconds trained by the sessions before the newest (a resumed run)
    follower: EventsFollower | None = None

    @classmethod
    def open(cls, path: Path, label: str) -> "ComparedRun":
        run = cls(path, label, read_config(path), follower=EventsFollower(path))
        run.update()
        return run

    @property
    def name(self) -> str:
        info = self.state.info
        return printable(info.run_name if info is not None and info.run_name else self.path.name)

    def update(self) -> bool:
        """Read what the run appended since the last call; True when something changed."""
        events = self.follower.read_all()
        for event in events:
            if isinstance(event, ev.RunStarted) and self.state.started_t is not None:
                self.earlier += self._session_time()
            self.state = reduce(self.state, event)
        return bool(events)

    def _session_time(self) -> float:
        s = self.state
        return s.end.elapsed if s.end is not None else s.elapsed

    @property
    def duration(self) -> float:
        return self.earlier + self._session_time()

    @property
    def live(self) -> bool:
        return bool(self.follower and self.follower.live)

    @property
    def status(self) -> str:
        s = self.state
        if s.active and not self.live:
            return "NO END" if s.info is not None else "NOT STARTED"  # its process is gone
        return s.status

    @property
    def monitor(self) -> str:
        s = self.state
        if s.end is not None:
            return s.end.monitor
        return s.info.monitor if s.info is not None else "val_loss"

    def best(self) -> tuple[int, float | None, float | None]:
        """(best epoch, its val_loss, its val_acc); (0, None, None) before the first epoch."""
        s = self.state
        if s.best_epoch in s.epochs_done:
            i = len(s.epochs_done) - 1 - s.epochs_done[::-1].index(s.best_epoch)
            return s.best_epoch, s.val_loss[i], s.val_acc[i]
        return 0, None, None

    def history(self, metric: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """(epochs, values) of val_loss or val_acc, one value per epoch (a resume's re-run
        epoch replaces the earlier one)."""
        s = self.state
        values = s.val_loss if metric == "val_loss" else s.val_acc
        per_epoch = dict(zip(s.epochs_done, values))
        epochs = tuple(sorted(per_epoch))
        return epochs, tuple(per_epoch[e] for e in epochs)


def open_runs(paths: list[Path]) -> list[ComparedRun]:
    return [ComparedRun.open(p, LABELS[i]) for i, p in enumerate(paths)]


def differing_keys(runs: list[ComparedRun]) -> list[str]:
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.config if k not in keys and k not in SKIPPED_KEYS]
    return [k for k in keys if len({json.dumps(r.config.get(k), sort_keys=True, default=str) for r in runs}) > 1]


def _acc(value: float | None) -> str:
    return "--" if value is None else f"{value:.2f}%"


def summary_table(runs: list[ComparedRun]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: each run's label, name, status, the config keys that differ, its best
    epoch by its own monitored metric with the validation metrics of that epoch, epochs and
    duration. Runs that monitor different metrics get a `best by` column naming each one's."""
    keys = differing_keys(runs)
    monitors = sorted({r.monitor for r in runs})
    if len(monitors) == 1:
        other = "val_acc" if monitors[0] == "val_loss" else "val_loss"
        best_cols = [f"best {monitors[0]}", "epoch", other]
    else:
        best_cols = ["best by", "epoch", "val_loss", "val_acc"]
    headers = ["", "run", "status", *keys, *best_cols, "trained", "duration"]
    rows = []
    for run in runs:
        epoch, loss, acc = run.best()
        shown = {"val_loss": fmt.metric(loss), "val_acc": _acc(acc)}
        if len(monitors) == 1:
            best = [shown[monitors[0]], str(epoch), shown[best_cols[2]]]
        else:
            best = [run.monitor, str(epoch), shown["val_loss"], shown["val_acc"]]
        if not epoch:
            best = ["--"] * len(best_cols)
        s = run.state
        done = len(set(s.epochs_done))
        rows.append([run.label, run.name, run.status, *(config_value(run.config.get(k)) for k in keys), *best,
                     f"{done}/{s.num_epochs}" if s.num_epochs else str(done), fmt.duration(run.duration)])
    return headers, rows


def epoch_table(runs: list[ComparedRun], max_rows: int = MAX_EPOCH_ROWS) -> tuple[list[str], list[list[str]], int]:
    """Validation loss and accuracy per epoch, one pair of columns per run. Long runs are
    thinned to about max_rows epochs (every n-th, plus the last and each run's best); returns
    (headers, rows, n)."""
    per_run = [(dict(zip(*r.history("val_loss"))), dict(zip(*r.history("val_acc")))) for r in runs]
    epochs = sorted({e for losses, _ in per_run for e in losses})
    every = max(1, math.ceil(len(epochs) / max_rows))
    keep = set(epochs[::every]) | set(epochs[-1:]) | {r.best()[0] for r in runs}
    headers = ["epoch"]
    for run in runs:
        headers += [f"{run.label} val_loss", f"{run.label} val_acc"]
    rows = []
    for epoch in epochs:
        if epoch not in keep:
            continue
        row = [str(epoch)]
        for (losses, accs), run in zip(per_run, runs):
            mark = "*" if run.best()[0] == epoch else " "  # the digits stay aligned
            row += [fmt.metric(losses[epoch]) + mark if epoch in losses else "", _acc(accs.get(epoch))
                    if epoch in accs else ""]
        rows.append(row)
    return headers, rows, every


def text_table(headers: list[str], rows: list[list[str]], right_from: int = 0) -> list[str]:
    """Aligned columns, two spaces apart; columns from `right_from` on are right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if i >= right_from and right_from else c.ljust(w)
                 for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()
    return [line(headers), *(line(r) for r in rows)]


def report_lines(runs: list[ComparedRun]) -> list[str]:
    """What `compare` prints without a terminal."""
    headers, rows = summary_table(runs)
    lines = text_table(headers, rows)
    if not differing_keys(runs):
        lines.append("(their configs do not differ)")
    headers, rows, every = epoch_table(runs)
    lines.append("")
    lines.append("validation per epoch (* best epoch)" + (f", every {every}th epoch shown" if every > 1 else ""))
    lines += text_table(headers, rows, right_from=1)
    live = [r.label for r in runs if r.live and r.state.active]
    if live:
        lines.append("")
        lines.append(f"({', '.join(live)} still training: a snapshot; in a terminal `compare` follows them)")
    return lines
