"""Views of the event stream: a plain log (headless) and the live console (tui)."""

from __future__ import annotations

import os
import sys


def terminal_available() -> bool:
    """Can the live console draw here? It needs stdin and stdout on a terminal and a TERM that
    is not dumb; otherwise (a pipe, a file, /dev/null, a job scheduler) the plain log is used.
    Under textual-serve (a browser tab) stdin and stdout are pipes, and Textual draws through
    the driver TEXTUAL_DRIVER names: the console is chosen there too."""
    from ..web import driver_from_environment

    if driver_from_environment():
        return True
    if os.environ.get("TERM", "") in ("", "dumb", "unknown"):
        return False
    try:
        return sys.stdout.isatty() and sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, AttributeError):  # a closed or replaced stream
        return False
