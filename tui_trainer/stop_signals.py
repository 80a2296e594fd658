"""Stop signals for runs without a console (headless runs, torchrun's other ranks).

The first SIGINT, SIGTERM or SIGHUP asks the engine to stop at its next step boundary, saving
last.pth; a second one leaves at once (checkpoint writes are atomic, so nothing is left
half-written). The console has its own handlers (frontends/tui/launch.py).
"""

from __future__ import annotations

import signal

EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM = 129, 130, 143

# signal: (stop reason given to the Control, exit code)
STOP_SIGNALS = {signal.SIGINT: ("signal", EXIT_SIGINT), signal.SIGTERM: ("term", EXIT_SIGTERM),
                signal.SIGHUP: ("term", EXIT_SIGHUP)}


class StopSignals:
    """While active, stop signals go to `control`. With keep_ignored, a signal the caller
    ignores (nohup, a script's background job) stays ignored."""

    def __init__(self, control, keep_ignored: bool = True) -> None:
        self.control = control
        self.keep_ignored = keep_ignored
        self.received: list[int] = []
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        self.received.append(signum)
        if len(self.received) > 1:
            raise KeyboardInterrupt
        self.control.request_stop(STOP_SIGNALS[signum][0])

    def __enter__(self) -> "StopSignals":
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if self.keep_ignored and (current is signal.SIG_IGN or
                                      (signum == signal.SIGHUP and current is not signal.SIG_DFL)):
                continue
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return False

    @property
    def exit_code(self) -> int | None:
        """The exit code the first signal received asks for, or None."""
        return STOP_SIGNALS[self.received[0]][1] if self.received else None
