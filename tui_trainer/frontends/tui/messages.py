"""The messages the console's App gets from other threads (the run's Session, the store)."""

from __future__ import annotations

from textual.message import Message


class StateWake(Message):
    """A lifecycle event arrived: redraw now rather than at the next poll."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StateWake)


class EngineDone(Message):
    """The engine thread has returned: the run is over (or never started)."""


class TerminalGone(Message):
    """The terminal hung up and the run goes on without this console: close, drawing nothing."""
