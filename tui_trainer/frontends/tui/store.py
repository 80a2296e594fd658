"""The bridge between the engine thread and the UI thread.

The engine emits into `StateStore`, which folds each event into an immutable RunState under
a lock. The app polls `snapshot()` a few times per second and redraws only when the version
changed. Rare lifecycle events additionally wake the app at once (a thread-safe, non-blocking
`post_message`), so a pause shows without waiting for the next poll. Nothing here blocks the
engine on the UI.
"""

from __future__ import annotations

import threading
from typing import Callable

from ... import events as ev
from ...event_io import printable_event
from ...state import RunState, reduce

URGENT = frozenset({"RunStarted", "Paused", "Resumed", "StopRequested", "RunFinished", "RunFailed",
                    "EvaluationReport", "LrChanged"})


def is_urgent(event: ev.Event) -> bool:
    """Lifecycle events and the answers to keys (an LR change, a save asked for with `c`)."""
    name = type(event).__name__
    return name in URGENT or (name == "CheckpointSaved" and getattr(event, "kind", "") == "manual")


class StateStore:
    def __init__(self, state: RunState | None = None, wake: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._state = state or RunState()
        self.wake = wake

    def emit(self, event: ev.Event) -> None:
        event = printable_event(event)  # names and messages reach the screen with control characters escaped
        with self._lock:
            self._state = reduce(self._state, event)
        if self.wake is not None and is_urgent(event):
            self.wake(type(event).__name__)

    def snapshot(self) -> RunState:
        with self._lock:
            return self._state
