"""The console of `tui-trainer attach`: a run another process trains, shown as the console that
started it shows it, and steered through the run's control channel.

The dashboard is rebuilt from events.jsonl by the same reducer, then follows the file as it
grows (EventsFollower reads only what was appended). Keys go to a RemoteControl, which has the
Control's methods and sends each request over the socket on a thread of its own, so a slow or
dead run never freezes the screen; what the engine did comes back through events.jsonl, exactly
as the keys' feedback comes back through the events in the starting console. `q` asks: detach
(the run goes on), stop the run, or cancel.

`build_attach_app(run_dir)` is the one way to build it (the CLI, tests, and anything serving the
console elsewhere).
"""

from __future__ import annotations

import json
import select
import shlex
import socket
import threading
from collections import deque
from pathlib import Path

from textual.binding import Binding
from textual.message import Message

from ...vocab import Status
from .app import CONTROL_ACTIONS, TrainerApp
from .store import StateStore
from .widgets.dialogs import ChoiceScreen, key_help

ATTACH_FOLLOW_INTERVAL = 0.1  # seconds between reads of events.jsonl: the keys' feedback arrives through it


class ControlReply(Message):
    """The run's answer to a request that failed (the run refused it, or is not there)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class RemoteControl:
    """Control's methods for the console's keys, carried out by the run over its socket.

    One connection, kept open: each key writes its request line at once, on the UI thread (a
    few bytes into a local socket's empty buffer never blocks), so a key reaches the run with no
    thread hand-off; the replies come back in order on a reader thread, which calls
    `on_error(text)` for one that failed. A lost connection is made again at the next key.
    `paused` is what was last asked or seen, as Control's is."""

    def __init__(self, run_dir: Path, on_error=None) -> None:
        self.run_dir = Path(run_dir)
        self.on_error = on_error
        self._paused = False
        self._stop: str | None = None
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pending: deque[str] = deque()
        self.sent = 0  # requests the run answered ok

    def _report(self, text: str) -> None:
        if self.on_error is not None:
            self.on_error(text)

    def _send(self, cmd: str, value=None) -> None:
        from ...control_socket import encode

        message = {"cmd": cmd} if value is None else {"cmd": cmd, "value": value}
        data = encode(message)
        with self._lock:
            for _ in range(2):  # once more on a fresh connection if the old one has gone
                sock = self._sock or self._connect()
                if sock is None:
                    return
                try:
                    sock.send(data)
                except BlockingIOError:
                    self._report(f"{cmd}: the run is not reading its control channel")
                    return
                except OSError:
                    self._forget(sock)
                    continue
                self._pending.append(cmd)
                return

    def _connect(self) -> socket.socket | None:
        from ...control_socket import socket_address

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(1.0)
        try:
            with socket_address(self.run_dir) as address:
                sock.connect(address)
        except OSError as exc:
            sock.close()
            self._report(f"the run does not answer: {exc.strerror or exc}")
            return None
        sock.setblocking(False)
        self._sock = sock
        self._pending.clear()
        threading.Thread(target=self._read_replies, args=(sock,), name="attach-replies", daemon=True).start()
        return sock

    def _forget(self, sock: socket.socket) -> None:
        if self._sock is sock:
            self._sock = None
        sock.close()

    def _read_replies(self, sock: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                ready, _, _ = select.select([sock], [], [], 1.0)
                chunk = sock.recv(65536) if ready else None
            except (OSError, ValueError):
                chunk = b""
            if chunk is None:
                continue
            if not chunk:
                with self._lock:
                    if self._sock is sock:
                        self._sock = None
                try:
                    sock.close()
                except OSError:
                    pass
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self._answered(line)

    def _answered(self, line: bytes) -> None:
        with self._lock:
            cmd = self._pending.popleft() if self._pending else "request"
        try:
            reply = json.loads(line.decode("utf-8"))
        except ValueError:
            reply = {"ok": False, "error": "the run's reply is not JSON"}
        if isinstance(reply, dict) and reply.get("ok"):
            self.sent += 1
        else:
            error = reply.get("error", "refused") if isinstance(reply, dict) else "refused"
            self._report(f"{cmd}: {error}")

    # ----- Control's methods, as the console's keys call them -----
    def pause(self) -> None:
        self._paused = True
        self._send("pause")

    def resume(self) -> None:
        self._paused = False
        self._send("resume")

    def toggle_pause(self) -> bool:
        (self.resume if self._paused else self.pause)()
        return self._paused

    def request_stop(self, reason: str = "user") -> None:
        self._stop = self._stop or reason
        self._paused = False
        self._send("stop")

    def request_checkpoint(self) -> None:
        self._send("checkpoint")

    def scale_lr(self, factor: float) -> None:
        if not factor > 0:
            raise ValueError("LR factor must be positive")
        self._send("lr", f"x{factor!r}")

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stop_reason(self) -> str | None:
        return self._stop

    def seen(self, status: Status) -> None:
        """The run's status as events.jsonl says it (another console may have pressed p)."""
        if status is Status.PAUSED:
            self._paused = True
        elif status is Status.RUNNING:
            self._paused = False


class DetachScreen(ChoiceScreen):
    """Returns "detach" (leave; the run goes on), "stop" (stop the run early) or "cancel"."""

    BINDINGS = [
        Binding("d,q,y,ctrl+c", "choose('detach')", "Detach"),
        Binding("s", "choose('stop')", "Stop the run"),
        Binding("n,escape,c", "choose('cancel')", "Cancel"),
    ]
    CHOICES = (("d", "detach: leave this console, the run goes on"),
               ("s", "stop the run early: save, evaluate, show the final report"),
               ("n", "cancel: stay attached"))


class AttachApp(TrainerApp):
    follow_interval = ATTACH_FOLLOW_INTERVAL

    def __init__(self, store: StateStore, run_dir: Path, follow, control: RemoteControl | None) -> None:
        super().__init__(store, control, None, follow=follow)
        self.run_dir = Path(run_dir)
        self._said_gone = False
        if control is not None:
            control.on_error = lambda text: self.post_message(ControlReply(text))

    @property
    def live(self) -> bool:
        return self.follow is not None and self.follow.live

    @property
    def running(self) -> bool:
        return super().running and self.live

    @property
    def source_note(self) -> str:
        return "ATTACHED" if self.live and self.store.snapshot().active else ""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in CONTROL_ACTIONS and self.control is not None and not self.live:
            return None  # the run's process is gone: nothing to steer
        return super().check_action(action, parameters)

    def refresh_view(self, force: bool = False) -> None:
        super().refresh_view(force)
        if self.stale and not self._said_gone:
            self._said_gone = True
            from ...runs_index import has_checkpoint

            then = (f"tui-trainer resume {shlex.quote(str(self.run_dir))} continues it" if has_checkpoint(self.run_dir)
                    else "it saved no checkpoint, so there is nothing to resume")
            self.notify(f"the training process is gone without recording an end; {then}", severity="error",
                        timeout=30)
            self.refresh_bindings()

    def _status_changed(self, state) -> None:
        if isinstance(self.control, RemoteControl):
            self.control.seen(state.run_status)
        super()._status_changed(state)

    def help_rows(self, state) -> list:
        return key_help(state, can_control=self.control is not None and self.live,
                        pause_requested=self.control is not None and self.control.paused, attached=True)

    def on_control_reply(self, message: ControlReply) -> None:
        self.requested = ""
        self.refresh_view(force=True)
        self.notify(message.text, severity="error", timeout=6)

    def action_suspend(self) -> None:
        self._suspend_now()  # suspending a viewer pauses nothing: the run is not this console's

    def action_quit_app(self) -> None:
        if not self.running:
            self.exit(0)
            return
        if isinstance(self.screen, DetachScreen):
            return
        self.push_screen(DetachScreen(paused=self.store.snapshot().run_status is Status.PAUSED), self._detach_chosen)

    def _detach_chosen(self, choice: str | None) -> None:
        if choice == "detach":
            self.exit(0)
        elif choice == "stop":
            self.action_stop()


def build_attach_app(run_dir) -> AttachApp:
    """The console attached to RUN_DIR: its dashboard from events.jsonl, then followed live, keys
    acting through its control channel while its process runs. A finished run shows its report
    (as `show` does); a run whose process is gone shows as not running."""
    from ...event_io import printable_event, skipped_notice
    from ...state import replay
    from ..follow import EventsFollower

    run_dir = Path(run_dir)
    follower = EventsFollower(run_dir)
    events = follower.read_all()
    if follower.skipped:
        events.append(skipped_notice(follower.skipped, follower.path, events[-1].t if events else 0.0))
    store = StateStore(replay(printable_event(e) for e in events))
    if follower.ended:
        return AttachApp(store, run_dir, None, None)
    return AttachApp(store, run_dir, follower, RemoteControl(run_dir))
