"""Checkpoint files written off the training thread.

One writer thread takes snapshots (states whose tensors were cloned when they were queued, so
training can change the model meanwhile), serialises each once and writes it to its files in
order: temporary file, fsync, rename, directory fsync (runlog.atomic_write), so every crash
guarantee of a synchronous save holds. The queue holds one snapshot: queueing the next waits
until the previous one is on disk, which an epoch of training has usually long covered.

A failed write (a full disk) is kept and raised on the training thread at its next step
(`raise_failure`); the snapshots after it are never written. The thread is not a daemon and
ends when the queue is empty: the interpreter waits for a write in flight before it exits.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..runlog import atomic_write
from .outcomes import CheckpointWriteError


@dataclass(frozen=True)
class Written:
    """A checkpoint file that is on disk (for CheckpointSaved)."""

    path: Path
    kind: str
    epoch: int
    step: int


@dataclass
class _Job:
    state: dict
    files: tuple[tuple[Path, str], ...]  # (path, kind), in the order they are written
    epoch: int
    step: int


def clone_tensors(obj):
    """A copy of a nested state in which every tensor is cloned (same device)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {key: clone_tensors(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone_tensors(value) for value in obj)
    return obj


class CheckpointWriter:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._thread: threading.Thread | None = None
        self._written: list[Written] = []
        self.failure: BaseException | None = None

    def submit(self, state: dict, files, epoch: int, step: int) -> None:
        """Queue a snapshot for `files` ((path, kind) pairs), after the previous one is written.
        Does nothing once a write has failed (the failure is raised at the next step)."""
        with self._cond:
            while self._queue and self.failure is None:
                self._cond.wait()
            if self.failure is not None:
                return
            self._queue.append(_Job(state, tuple(files), epoch, step))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tui-trainer-checkpoints", daemon=False)
                self._thread.start()

    def wait(self) -> None:
        """Until every queued snapshot is written (or a write failed)."""
        with self._cond:
            while self._queue:
                self._cond.wait()

    def take_written(self) -> list[Written]:
        with self._cond:
            written, self._written = self._written, []
        return written

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def forget_failure(self) -> None:
        """A new run on the same Trainer (after a full disk was cleared, say) writes again."""
        with self._cond:
            self.failure = None

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._thread = None
                    self._cond.notify_all()
                    return
                job = self._queue[0]
            try:
                self._write(job)
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                with self._cond:
                    self.failure = exc
                    self._queue.clear()
                    self._thread = None
                    self._cond.notify_all()
                return
            with self._cond:
                self._queue.popleft()
                self._cond.notify_all()

    def _write(self, job: _Job) -> None:
        buffer = io.BytesIO()
        torch.save(job.state, buffer)
        with buffer.getbuffer() as data:
            for path, kind in job.files:
                try:
                    atomic_write(path, lambda fh: fh.write(data), binary=True)
                except UserError:
                    raise  # a link planted in the run directory: refused, one line
                except OSError as exc:
                    raise CheckpointWriteError(f"could not write {path}: {exc.strerror or exc}; "
                                               "the previous checkpoint is intact", job.epoch, job.step) from None
                with self._cond:
                    self._written.append(Written(path, kind, job.epoch, job.step))
