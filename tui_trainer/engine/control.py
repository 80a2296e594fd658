"""Control: the one thread-safe way in for keys, signals and scripts.

The engine polls `pending` once per step - a single attribute read on the fast path - and
calls `service()` only when something was asked for. Pausing blocks the engine thread on a
condition variable, so a paused run uses no CPU or GPU.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Requests:
    """What the engine must act on at this step boundary."""

    stop: str | None  # None, or the reason: user | quit | signal
    checkpoint: bool
    lr_factor: float  # multiply the LR by this (1.0: no change)


class Control:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.pending = False  # read lock-free by the engine every step
        self._paused = False
        self._stop: str | None = None
        self._checkpoint = False
        self._lr_factor = 1.0

    # ----- called by keys, signals, scripts (any thread) -----
    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self.pending = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def toggle_pause(self) -> bool:
        """Pause if running, resume if paused; returns True when now paused."""
        with self._cond:
            if self._paused:
                self._paused = False
                self._cond.notify_all()
            else:
                self._paused = True
                self.pending = True
            return self._paused

    def request_stop(self, reason: str = "user") -> None:
        """Graceful stop at the next step boundary. The first reason given wins."""
        with self._cond:
            if self._stop is None:
                self._stop = reason
            self._paused = False
            self.pending = True
            self._cond.notify_all()

    def request_checkpoint(self) -> None:
        with self._cond:
            self._checkpoint = True
            self.pending = True
            self._cond.notify_all()  # a paused engine saves now, not when it resumes

    def scale_lr(self, factor: float, lr_now: float | None = None) -> None:
        """Multiply the LR by factor at the next step boundary. With lr_now (the LR in force), a
        factor that would take it - together with the changes not yet applied - past the largest
        float is refused with ValueError: a run cannot train on an infinite LR."""
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError("LR factor must be positive and finite")
        with self._cond:
            combined = self._lr_factor * factor
            if not (combined > 0 and math.isfinite(combined * (lr_now or 1.0))):
                raise ValueError("lr: the learning rate would not be a finite number; nothing changed")
            self._lr_factor = combined
            self.pending = True
            self._cond.notify_all()  # a paused engine applies it now

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stop_reason(self) -> str | None:
        return self._stop

    # ----- called by the engine -----
    def take(self) -> Requests:
        """Collect and clear one-shot requests (the stop reason stays set)."""
        with self._cond:
            requests = Requests(self._stop, self._checkpoint, self._lr_factor)
            self._checkpoint = False
            self._lr_factor = 1.0
            self.pending = self._paused or self._stop is not None
            return requests

    def wait_while_paused(self, timeout: float | None = None) -> bool:
        """Block while paused (no busy wait) until `timeout`, a resume, a stop, or a request to
        act on while paused (checkpoint, LR). Returns True if still paused."""
        with self._cond:
            if self._paused and self._stop is None:
                self._cond.wait(timeout)
            return self._paused and self._stop is None
