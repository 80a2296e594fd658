"""The control channel's address and wire format, shared by a run (control_server.py) and its
clients (`tui-trainer ctl`, `attach`: control_client.py).

Every run serves a Unix domain socket in its run directory, RUN_DIR/control.sock (mode 0600,
peer uid checked). A request is one JSON object on one line, `{"cmd": "pause"}` or
`{"cmd": "lr", "value": "x2"}`; the reply is one JSON object on one line, `{"ok": true, ...}` or
`{"ok": false, "error": "..."}`.

A socket address holds at most 107 bytes of path. A run directory deeper than that is reached
through /proc/self/fd/N/control.sock, N a descriptor of the directory held while binding or
connecting, so no run directory is too long to be served.

No torch, no Textual.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Iterator

CONTROL_NAME = "control.sock"
MAX_LINE = 4096  # bytes of one request line, newline included; a longer one is refused and the connection closed
COMMANDS = ("status", "pause", "resume", "stop", "checkpoint", "lr")
SUN_PATH_MAX = 107  # bytes of a path in sockaddr_un (108 with its terminating NUL)


def control_path(run_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(run_dir), CONTROL_NAME)


def short_address(dir_fd: int) -> str:
    """RUN_DIR/control.sock by way of an open descriptor of RUN_DIR: short whatever RUN_DIR is."""
    return f"/proc/self/fd/{dir_fd}/{CONTROL_NAME}"


@contextmanager
def socket_address(run_dir: str | os.PathLike) -> Iterator[str]:
    """A path to RUN_DIR/control.sock that fits in a socket address, valid inside the block."""
    path = control_path(run_dir)
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield path
        return
    fd = os.open(run_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield short_address(fd)
    finally:
        os.close(fd)


def encode(message: dict) -> bytes:
    return (json.dumps(message, separators=(",", ":"), allow_nan=False, default=str) + "\n").encode("utf-8")


def parse_lr_value(value) -> tuple[str, float]:
    """What `lr VALUE` asks for: ("factor", f) for x2, *2, /2 (a factor on the LR in force), or
    ("absolute", lr) for a number such as 3e-4. Raises ValueError with a sentence."""
    text = str(value).strip().lower() if not isinstance(value, (int, float)) or isinstance(value, bool) else None
    try:
        if text is None:
            kind, number = "absolute", float(value)
        elif text[:1] in ("x", "*", "/"):
            kind, number = "factor", float(text[1:])
            if text[0] == "/" and number > 0:
                number = 1.0 / number
        else:
            kind, number = "absolute", float(text)
    except (ValueError, TypeError, OverflowError, ZeroDivisionError):
        raise ValueError(f"lr: {str(value)[:40]!r} is not x2, /2 or a learning rate such as 3e-4") from None
    if not (number > 0 and number < float("inf")):
        raise ValueError(f"lr: {str(value)[:40]!r} must be positive and finite")
    return kind, number
