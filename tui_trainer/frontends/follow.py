"""Following a run another process is writing: the events appended to its events.jsonl since
the last read, and whether that process still holds the run directory.

`show` uses it so that a live run is followed rather than frozen at the moment it was opened,
and so that a run whose process died without recording an end is not shown as running. No
Textual here; nothing is written, created or locked for longer than a probe.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from .. import events as ev
from ..event_io import parse_event_line
from ..runlog import EVENTS_NAME, LOCK_NAME

MAX_READ = 4 << 20  # bytes read per call: a long backlog arrives over several reads
MAX_LINE = 1 << 20  # an unterminated line longer than this is not an event; it is dropped


def writer_alive(run_dir: Path) -> bool:
    """True while a tui-trainer process holds RUN_DIR's lock (it is training into it).

    Probes with a non-blocking shared flock on a read-only descriptor: it fails exactly when
    the writer holds its exclusive lock, and otherwise is released at once."""
    try:
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class EventsFollower:
    """Reads RUN_DIR/events.jsonl incrementally; `read()` returns the whole lines appended
    since the previous call (a line still being written waits for its newline)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / EVENTS_NAME
        self._offset = 0
        self._partial = b""
        self.ended = False  # a RunFinished or RunFailed was read
        self.skipped = 0  # lines that were not valid events
        self.live = writer_alive(self.run_dir)

    @property
    def offset(self) -> int:
        """Bytes of the file read so far."""
        return self._offset

    def read(self) -> list[ev.Event]:
        self.live = writer_alive(self.run_dir)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return []
        try:
            os.lseek(fd, self._offset, os.SEEK_SET)
            data = os.read(fd, MAX_READ)
        finally:
            os.close(fd)
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE:
            self._partial = b""
            self.skipped += 1
        events: list[ev.Event] = []
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                event = parse_event_line(line)  # validated: the file is not trusted
            except ValueError:
                self.skipped += 1
                continue
            events.append(event)
            if type(event).__name__ in ev.TERMINAL_EVENTS:
                self.ended = True
        return events

    def read_all(self) -> list[ev.Event]:
        """Everything there is now (a backlog larger than MAX_READ takes several reads)."""
        events: list[ev.Event] = []
        while True:
            before = self._offset
            events += self.read()
            if self._offset == before or self._offset - before < MAX_READ:
                if self._partial.strip() and not self.live:
                    self._partial = b""  # no writer will finish it: a line torn by a crash
                    self.skipped += 1
                return events
