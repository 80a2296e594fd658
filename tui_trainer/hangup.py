"""When the console's terminal goes away and the run goes on without it (session.py,
on_hangup="continue"): noticing the loss even when no SIGHUP arrives, and making sure nothing
touches that terminal again. No torch, no Textual."""

from __future__ import annotations

import os
import signal
import threading
from typing import Callable

TERMINAL_CHECK_INTERVAL = 0.5  # seconds between checks that the console's terminal is still there


def watch_terminal(stop: threading.Event, hung_up: Callable[[], bool]) -> None:
    """A terminal can go away without a SIGHUP reaching this process (its session leader
    survived the hang-up, as a wrapper that ignores it does): its descriptors then stop being a
    terminal, reads return EOF and writes fail. Seen here, it is a hang-up like any other: the
    same handler, on the main thread, by way of the signal. Runs on a thread until `stop`."""
    while not stop.wait(TERMINAL_CHECK_INTERVAL):
        if not os.isatty(0):
            if not stop.is_set() and not hung_up():
                os.kill(os.getpid(), signal.SIGHUP)
            return


def silence_terminal() -> None:
    """Nothing may write to or read from a terminal that hung up (a write could fail or block,
    a read returns EOF at once and would spin): the standard streams become /dev/null."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
    except OSError:
        pass
