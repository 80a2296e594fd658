"""Support for driving tui-trainer as a user would, from tests and benchmarks: a command on a
real pseudo-terminal that is its controlling terminal, with its output drained (a full pty
buffer would block the program)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path


class PtyRun:
    """`python -m tui_trainer ARGS` on a COLSxROWS pseudo-terminal (`program` replaces
    `python -m tui_trainer`, e.g. [sys.executable] to run a script)."""

    def __init__(self, args: list[str], cwd: str | Path | None = None, size: tuple[int, int] = (120, 36),
                 env: dict | None = None, program: list[str] | None = None) -> None:
        cols, rows = size
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

        def become_session_leader():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        full_env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        full_env.update(env or {})
        self.started = time.monotonic()
        program = program or [sys.executable, "-m", "tui_trainer"]
        self.proc = subprocess.Popen([*program, *args], stdin=slave, stdout=slave,
                                     stderr=slave, cwd=cwd, env=full_env, preexec_fn=become_session_leader,
                                     close_fds=True)
        os.close(slave)
        self.output = bytearray()
        self._closing = False
        self.first_output_at: float | None = None
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closing:
            # A read blocked on the master would keep it open after close_terminal (closing a
            # descriptor does not end a read in progress), and the kernel hangs up only once the
            # last reference is gone: wait for data with a timeout instead.
            try:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                chunk = os.read(self.master, 65536)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            with self._lock:
                if self.first_output_at is None:
                    self.first_output_at = time.monotonic()
                self.output += chunk

    def wait_for(self, text: bytes, timeout: float = 30.0) -> float:
        """Seconds from launch until `text` appeared in the output; raises on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if text in self.output:
                    return time.monotonic() - self.started
            if self.proc.poll() is not None:
                break
            time.sleep(0.005)
        raise TimeoutError(f"{text!r} did not appear within {timeout}s")

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close_terminal(self) -> None:
        """Close the terminal's master side, as a dropped SSH connection does: the kernel then
        sends SIGHUP to the program, whether or not it is writing at that moment."""
        self._closing = True
        self._reader.join(timeout=5)
        os.close(self.master)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
