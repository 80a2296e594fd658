"""The run's side of the control channel: a Unix socket in the run directory that answers
`status`, `pause`, `resume`, `stop`, `checkpoint` and `lr` with the same Control methods the
console's keys call (wire format: control_socket.py).

One plain thread serves every client with a selector, so a client can never block training:
the engine only ever sees Control's flags. A client gets at most MAX_LINE bytes per request and
IDLE_TIMEOUT seconds to finish one; invalid JSON and unknown commands get an error reply;
another user's connection is refused by the kernel (mode 0600) and, should it get through, by
its SO_PEERCRED uid. No torch, no Textual.
"""

from __future__ import annotations

import errno
import json
import math
import os
import selectors
import socket
import stat
import struct
import threading
import time
from pathlib import Path
from typing import Callable

from . import events as ev
from .control_socket import (CONTROL_NAME, MAX_LINE, SUN_PATH_MAX, encode, parse_lr_value)
from .state import RunState, reduce
from .vocab import StopReason

IDLE_TIMEOUT = 10.0  # seconds a client may take to send its first or a started request line
MAX_CLIENTS = 32  # connections served at once (an attached console keeps one open); more are closed at once
MAX_REPLY_QUEUE = 64 * 1024  # bytes of replies a client that does not read may hold


class RunStatus:
    """A sink that keeps the run's RunState (the same reducer as every view) for `status`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = RunState()

    def emit(self, event: ev.Event) -> None:
        with self._lock:
            self._state = reduce(self._state, event)

    def snapshot(self) -> RunState:
        with self._lock:
            return self._state


def status_reply(state: RunState, control, pid: int) -> dict:
    """What `status` says: enough for a script to decide what to do next."""
    best = None
    if state.best_epoch and state.best_epoch in state.epochs_done:
        i = state.epochs_done.index(state.best_epoch)
        best = {"epoch": state.best_epoch, "val_loss": state.val_loss[i] if i < len(state.val_loss) else None,
                "val_acc": state.val_acc[i] if i < len(state.val_acc) else None}
    return {"ok": True, "status": state.run_status.value, "pid": pid,
            "run": state.info.run_name if state.info is not None else "",
            "epoch": state.epoch, "epochs": state.num_epochs, "step": state.step, "steps": state.steps,
            "samples": state.samples, "lr": state.lr, "best": best,
            "pause_requested": bool(control.paused), "stop_requested": control.stop_reason}


class ControlServer:
    """Serves RUN_DIR/control.sock until `close()`; requests act on `control`.

    `state` returns the run's RunState (status replies, absolute LRs, refusing to act on a run
    that has ended)."""

    def __init__(self, run_dir: str | os.PathLike, control, state: Callable[[], RunState],
                 on_request: Callable[[str], None] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.control = control
        self.state = state
        self.on_request = on_request
        self.pid = os.getpid()
        self.error = ""  # why the channel could not be served, if it could not
        self._sock: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r, self._wake_w = -1, -1
        self._clients: dict[int, _Client] = {}
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    # ----- lifetime -----
    def start(self) -> bool:
        """Bind and serve; False (and `error` says why) when the socket cannot be made."""
        try:
            self._sock = self._bind()
        except OSError as exc:
            self.error = f"no control channel in {self.run_dir}: {exc.strerror or exc}"
            return False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._sock, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._serve, name="control-server", daemon=True)
        self._thread.start()
        return True

    def _bind(self) -> socket.socket:
        """Bind a fresh socket under a temporary name, make it 0600, then rename it over
        control.sock: a stale socket a killed run left is replaced in one step, and no one ever
        sees the socket with looser permissions under its real name. Every path goes through a
        descriptor of the run directory, so a long run directory still fits a socket address
        and a symlink planted in it is never followed."""
        dir_fd = os.open(self.run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        temp = f".{CONTROL_NAME}.{os.getpid()}.tmp"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            try:
                os.unlink(temp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            full = os.path.join(os.fspath(self.run_dir), temp)
            address = full if len(os.fsencode(full)) <= SUN_PATH_MAX else f"/proc/self/fd/{dir_fd}/{temp}"
            sock.bind(address)
            os.chmod(temp, 0o600, dir_fd=dir_fd)  # the socket bind just made (umask is process-wide)
            existing = _lstat(CONTROL_NAME, dir_fd)
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                os.unlink(temp, dir_fd=dir_fd)
                raise OSError(errno.EISDIR, f"{CONTROL_NAME} is a directory")
            os.rename(temp, CONTROL_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            st = os.stat(CONTROL_NAME, dir_fd=dir_fd, follow_symlinks=False)
            self._inode = (st.st_dev, st.st_ino)
            sock.listen(MAX_CLIENTS)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        finally:
            os.close(dir_fd)
        return sock

    def close(self) -> None:
        """Stop serving and remove control.sock (only if it is still ours). Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._remove_socket_file()
            self._sock.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _remove_socket_file(self) -> None:
        try:
            dir_fd = os.open(self.run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            st = _lstat(CONTROL_NAME, dir_fd)
            if st is not None and (st.st_dev, st.st_ino) == self._inode:
                os.unlink(CONTROL_NAME, dir_fd=dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    # ----- the serving thread -----
    def _serve(self) -> None:
        selector = self._selector
        try:
            while not self._closed.is_set():
                for key, mask in selector.select(timeout=1.0):
                    if key.data == "wake":
                        continue
                    if key.fileobj is self._sock:
                        self._accept()
                    else:
                        self._service(key.data, mask)
                self._drop_idle()
        finally:
            for client in list(self._clients.values()):
                self._drop(client)
            selector.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. out of descriptors: try again at the next connection
            conn.setblocking(False)
            if len(self._clients) >= MAX_CLIENTS:
                _send_and_close(conn, {"ok": False, "error": "too many control connections"})
                continue
            if peer_uid(conn) != os.geteuid():
                _send_and_close(conn, {"ok": False, "error": "refused: not the user running this training"})
                continue
            client = _Client(conn)
            self._clients[conn.fileno()] = client
            self._selector.register(conn, selectors.EVENT_READ, client)

    def _service(self, client: "_Client", mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = client.conn.recv(MAX_LINE)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._drop(client)
                return
            if data == b"":
                client.eof = True
            elif data:
                client.buffer += data
                client.last_seen = time.monotonic()
                while b"\n" in client.buffer and not client.closing:
                    line, client.buffer = client.buffer.split(b"\n", 1)
                    if len(line) + 1 > MAX_LINE:
                        self._reply(client, {"ok": False, "error": f"request longer than {MAX_LINE} bytes"})
                        client.closing = True
                        break
                    self._reply(client, self.handle_line(line))
                    client.answered += 1
                if len(client.buffer) >= MAX_LINE and not client.closing:
                    client.buffer = b""
                    self._reply(client, {"ok": False, "error": f"request longer than {MAX_LINE} bytes"})
                    client.closing = True
        if mask & selectors.EVENT_WRITE or client.outbox:
            self._flush(client)
        if client.eof and not client.outbox:
            self._drop(client)
        elif client.closing and not client.outbox:
            self._drop(client)

    def _reply(self, client: "_Client", message: dict) -> None:
        try:
            data = encode(message)
        except ValueError:  # a non-finite number in it: one client's reply must not end the serving thread
            data = encode({"ok": False, "error": "the reply holds a number JSON cannot carry (inf or nan)"})
        client.outbox += data
        if len(client.outbox) > MAX_REPLY_QUEUE:
            self._drop(client)  # asks and never reads: not our memory to spend

    def _flush(self, client: "_Client") -> None:
        if client.dropped:
            return
        try:
            sent = client.conn.send(client.outbox)
            client.outbox = client.outbox[sent:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(client)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbox else 0)
        try:
            self._selector.modify(client.conn, events, client)
        except (KeyError, ValueError):
            pass

    def _drop_idle(self) -> None:
        now = time.monotonic()
        for client in list(self._clients.values()):
            # A console between keys keeps its connection, and owes nothing; a client that
            # never asked, or stopped halfway through a line, is holding a slot for no one.
            owes = client.buffer or not client.answered
            if owes and now - client.last_seen > IDLE_TIMEOUT:
                if not client.outbox:
                    self._reply(client, {"ok": False, "error": f"no request within {IDLE_TIMEOUT:g}s"})
                    self._flush(client)
                self._drop(client)

    def _drop(self, client: "_Client") -> None:
        if client.dropped:
            return
        client.dropped = True
        self._clients.pop(client.fd, None)
        try:
            self._selector.unregister(client.conn)
        except (KeyError, ValueError):
            pass
        client.conn.close()

    # ----- requests -----
    def handle_line(self, line: bytes) -> dict:
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return {"ok": False, "error": "not a JSON object on one line"}
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": 'a request is {"cmd": "status"} (pause, resume, stop, checkpoint, lr)'}
        try:
            return self.handle(request["cmd"], request.get("value"))
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}

    def handle(self, cmd: str, value=None) -> dict:
        state = self.state()
        if cmd == "status":
            return status_reply(state, self.control, self.pid)
        if cmd not in ("pause", "resume", "stop", "checkpoint", "lr"):
            return {"ok": False, "error": f"unknown command {cmd[:40]!r}: status, pause, resume, stop, checkpoint "
                                          "or lr"}
        if not state.active:
            return {"ok": False, "error": f"the run has ended ({state.run_status.words})",
                    "status": state.run_status.value}
        if self.on_request is not None:
            self.on_request(cmd)
        if cmd == "pause":
            self.control.pause()
        elif cmd == "resume":
            self.control.resume()
        elif cmd == "stop":
            self.control.request_stop(StopReason.USER.value)
        elif cmd == "checkpoint":
            self.control.request_checkpoint()
        else:
            kind, number = parse_lr_value(value)
            if kind == "absolute":
                if not state.lr:
                    raise ValueError("lr: the run has no learning rate yet; try again once it trains")
                factor = number / state.lr
            else:
                factor = number
            if not (0 < factor < math.inf):  # 1e308 / 3e-4: a finite LR asked for, yet no factor to scale by
                raise ValueError(f"lr: {str(value)[:40]!r} would make the learning rate not a finite number; "
                                 "nothing changed")
            self.control.scale_lr(factor, lr_now=state.lr or None)
            return {"ok": True, "cmd": cmd, "factor": factor, "lr_was": state.lr,
                    "status": state.run_status.value}
        return {"ok": True, "cmd": cmd, "status": state.run_status.value}


class _Client:
    __slots__ = ("conn", "fd", "buffer", "outbox", "last_seen", "eof", "closing", "dropped", "answered")

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.fd = conn.fileno()
        self.buffer = b""
        self.outbox = b""
        self.last_seen = time.monotonic()
        self.eof = self.closing = self.dropped = False
        self.answered = 0


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end (SO_PEERCRED: pid, uid, gid)."""
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return -1
    return struct.unpack("3i", creds)[1]


def _send_and_close(conn: socket.socket, message: dict) -> None:
    try:
        conn.send(encode(message))
    except OSError:
        pass
    conn.close()


def _lstat(name: str, dir_fd: int):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
