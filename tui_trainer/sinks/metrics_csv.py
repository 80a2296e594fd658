"""metrics.csv: one row per epoch, appended and flushed as each epoch ends.

The file must agree with the checkpoint a resume continues from. The engine emits an epoch's
EpochEnd (this row) before it saves that epoch's checkpoint, so a kill in between leaves a row
the checkpoint does not have; a torn last line or an older version may leave rows missing. When
a resumed run starts, the file is rebuilt from the checkpoint's own history (RunStarted carries
it): the epochs it holds, no later one, and the timing columns kept from the rows that were
there. Rebuilt with an atomic rename; rows are whole lines appended with one write each, through
a descriptor opened without following a symbolic link (runlog.open_run_file).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from .. import events as ev
from .. import runlog
from ..errors import UserError

CSV_NAME = runlog.METRICS_CSV_NAME
COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time", "samples_per_sec")
MAX_READ_BYTES = 64 * 1024 * 1024  # an existing file read back on resume: bounded, whatever it holds


def _number(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)  # nan, inf: as Python (and pandas) read them back
    return repr(float(value)) if digits is None else f"{value:.{digits}f}"


def row_text(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def epoch_row(e: ev.EpochEnd) -> list[str]:
    return [str(e.epoch), _number(e.train_loss), _number(e.train_acc), _number(e.val_loss), _number(e.val_acc),
            _number(e.lr), _number(e.epoch_time, 3), _number(e.samples_per_sec, 1)]


def read_timings(path: Path) -> dict[int, tuple[str, str]]:
    """epoch -> (epoch_time, samples_per_sec) of the readable rows of an existing metrics.csv.
    Anything else in it (a torn line, a damaged field) is ignored: the checkpoint's history
    rebuilds the metrics, only the timings come from here."""
    try:
        fd = runlog.open_run_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return {}
    with open(fd, "rb") as fh:
        data = fh.read(MAX_READ_BYTES)
    timings: dict[int, tuple[str, str]] = {}
    lines = data.decode("utf-8", errors="replace").splitlines()
    for fields in csv.reader(lines[1:] if lines and lines[0].startswith("epoch,") else lines):
        if len(fields) != len(COLUMNS) or not fields[0].isdigit():
            continue
        try:
            time_s, rate = (float(v) if v else None for v in fields[6:8])
        except ValueError:
            continue
        if all(v is None or math.isfinite(v) for v in (time_s, rate)):
            timings[int(fields[0])] = (fields[6], fields[7])
    return timings


def history_rows(e: ev.RunStarted, timings: dict[int, tuple[str, str]]) -> list[list[str]]:
    n = len(e.history_val_loss)
    if not n or any(len(h) != n for h in (e.history_train_loss, e.history_train_acc, e.history_val_acc)):
        return []
    lrs = e.history_lr if len(e.history_lr) == n else (None,) * n
    rows = []
    for i in range(n):
        epoch = i + 1
        time_s, rate = timings.get(epoch, ("", ""))
        rows.append([str(epoch), _number(e.history_train_loss[i]), _number(e.history_train_acc[i]),
                     _number(e.history_val_loss[i]), _number(e.history_val_acc[i]), _number(lrs[i]), time_s, rate])
    return rows


class MetricsCsv:
    """A sink writing RUN_DIR/metrics.csv. Opened when the run starts (a run that never starts
    writes none); a write that fails (full disk) is cut back and counted, never raised into
    the run."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / CSV_NAME
        self._fd: int | None = None
        self._size = 0
        self.error: Exception | None = None

    def emit(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self._start(event)
        elif isinstance(event, ev.EpochEnd) and self._fd is not None:
            self._append(row_text(epoch_row(event)))
        elif type(event).__name__ in ev.TERMINAL_EVENTS:
            self.close()

    def _start(self, e: ev.RunStarted) -> None:
        self.close()
        rows: list[list[str]] = []
        try:
            if e.resumed and e.start_epoch:
                if e.history_val_loss:
                    rows = history_rows(e, read_timings(self.path))[:e.start_epoch]
                else:  # a checkpoint written before it carried its history: keep the rows up to it
                    rows = self._rows_up_to(e.start_epoch)
            text = row_text(list(COLUMNS)) + "".join(row_text(r) for r in rows)
            runlog.atomic_write(self.path, lambda fh: fh.write(text))
            self._fd = runlog.open_run_file(self.path, os.O_WRONLY | os.O_APPEND)
            self._size = os.fstat(self._fd).st_size
        except (OSError, UserError) as exc:  # a planted link is refused before the run (check_run_files)
            self.error = exc

    def _rows_up_to(self, epoch: int) -> list[list[str]]:
        try:
            fd = runlog.open_run_file(self.path, os.O_RDONLY)
        except OSError:
            return []
        with open(fd, "rb") as fh:
            lines = fh.read(MAX_READ_BYTES).decode("utf-8", errors="replace").splitlines()
        rows, seen = [], set()
        for fields in csv.reader(lines[1:]):
            if len(fields) == len(COLUMNS) and fields[0].isdigit() and int(fields[0]) <= epoch \
                    and int(fields[0]) not in seen:
                seen.add(int(fields[0]))
                rows.append(fields)
        return rows

    def _append(self, line: str) -> None:
        data = line.encode("utf-8")
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            self._size += len(data)
        except OSError as exc:
            self.error = exc
            try:
                os.ftruncate(self._fd, self._size)  # no half row for the next one to be glued to
            except OSError:
                pass

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass
