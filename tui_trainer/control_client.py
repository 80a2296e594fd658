"""The client side of a run's control channel (control_server.py): one request, one reply.

`request(run_dir, "pause")` returns the run's reply as a dict (`{"ok": true, ...}` or
`{"ok": false, "error": ...}`), or raises ControlUnavailable when no process serves the run
directory (it has ended, crashed, or never started). No torch, no Textual.
"""

from __future__ import annotations

import json
import os
import socket

from .control_socket import MAX_LINE, encode, socket_address

MAX_REPLY = 64 * 1024  # bytes of one reply line


class ControlUnavailable(Exception):
    """No run answers on this run directory's control socket."""


def request(run_dir: str | os.PathLike, cmd: str, value=None, timeout: float = 5.0) -> dict:
    message = {"cmd": cmd} if value is None else {"cmd": cmd, "value": value}
    data = encode(message)
    if len(data) > MAX_LINE:
        raise ValueError(f"request longer than {MAX_LINE} bytes")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        try:
            with socket_address(run_dir) as address:
                sock.connect(address)
        except OSError as exc:  # no socket, a stale one (refused), not ours (permission)
            raise ControlUnavailable(exc.strerror or str(exc)) from None
        try:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused at once (another user, too many clients): the reason is waiting to be read
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(MAX_REPLY)
                if not chunk:
                    break
                reply += chunk
                if len(reply) > MAX_REPLY:
                    raise ControlUnavailable("the reply is too long")
        except socket.timeout:
            raise ControlUnavailable(f"no reply within {timeout:g}s") from None
        except OSError as exc:
            raise ControlUnavailable(exc.strerror or str(exc)) from None
    finally:
        sock.close()
    if not reply:
        raise ControlUnavailable("the run closed the connection without a reply")
    try:
        answer = json.loads(reply.decode("utf-8"))
    except ValueError:
        raise ControlUnavailable("the reply is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlUnavailable("the reply is not a JSON object")
    return answer
