"""The live console. The App is thin: it polls the StateStore, hands each panel the newest
RunState, maps keys onto the Control, and runs the engine in a Textual thread worker."""

from __future__ import annotations

import threading
from typing import Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.message import Message
from textual.widgets import ContentSwitcher, Footer, Static
from textual.worker import Worker, WorkerState

from ...state import RunState
from .store import StateStore
from .widgets.dialogs import HelpScreen, QuitScreen
from .widgets.early_stop import EarlyStopPanel
from .widgets.events_log import EventsPanel
from .widgets.header import StatusHeader
from .widgets.lr import LrPanel
from .widgets.metrics import MetricsPanel
from .widgets.progress import ProgressPanel
from .widgets.report import ReportPanel
from .widgets.system import SystemPanel

MIN_WIDTH, MIN_HEIGHT = 80, 24
CONTROL_ACTIONS = ("toggle_pause", "stop", "checkpoint", "lr_up", "lr_down")


class StateWake(Message):
    """A lifecycle event arrived: redraw now rather than at the next poll."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StateWake)


class TrainerApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "tui-trainer"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause", id="pause", tooltip="Pause or resume at the next step"),
        Binding("space", "toggle_pause", "Pause", show=False),
        Binding("s", "stop", "Stop", id="stop", tooltip="Stop early: evaluate the best model, show the report"),
        Binding("c", "checkpoint", "Save", id="checkpoint", tooltip="Save a resumable last.pth now"),
        Binding("plus", "lr_up", "LR×2", key_display="+", id="lr-up", tooltip="Double the learning rate"),
        Binding("minus", "lr_down", "LR÷2", key_display="-", id="lr-down", tooltip="Halve the learning rate"),
        Binding("d", "toggle_view", "Report", id="view", tooltip="Switch between dashboard and report"),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
        Binding("q", "quit_app", "Quit", id="quit", tooltip="Quit (asks first while training)"),
        Binding("ctrl+c", "quit_app", "Quit", show=False, priority=True),
    ]

    def __init__(self, store: StateStore, control=None, job: Callable[[], object] | None = None, *,
                 poll_interval: float = 0.25) -> None:
        super().__init__()
        self.store = store
        self.control = control
        self.job = job
        self.poll_interval = poll_interval
        self.outcome = None
        self.quit_reason = ""  # quit | signal name, when the user or a signal ended the run
        self.requested = ""  # what a key asked for, shown until the engine confirms it
        self._shown_version = -1
        self._shown_status = ""
        self._exit_when_done = False
        self._worker: Worker | None = None
        self.engine_done = threading.Event()  # set when the job returned (or failed)
        if job is not None:
            store.wake = lambda name: self.post_message(StateWake())

    # ----- layout -----
    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with Container(id="body"):
            with ContentSwitcher(initial="dashboard", id="views"):
                with Vertical(id="dashboard"):
                    yield ProgressPanel(id="progress", classes="panel")
                    with Horizontal(id="middle"):
                        yield MetricsPanel(id="metrics", classes="panel")
                        with Vertical(id="side"):
                            yield LrPanel(id="lr", classes="panel")
                            yield EarlyStopPanel(id="early", classes="panel")
                            yield SystemPanel(id="system", classes="panel")
                    yield EventsPanel(id="events", classes="panel")
                yield ReportPanel(id="report", classes="panel")
        yield Static(f"terminal too small\nneeds at least {MIN_WIDTH}x{MIN_HEIGHT}\ntraining continues",
                     id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        titles = {"progress": "Progress", "metrics": "Loss & accuracy", "lr": "Learning rate",
                  "early": "Early stopping", "system": "System", "events": "Events", "report": "Report"}
        for widget_id, title in titles.items():
            self.query_one(f"#{widget_id}").border_title = title
        self._apply_size(self.size.width, self.size.height)
        self.refresh_view(force=True)
        self.set_interval(self.poll_interval, self.refresh_view)
        if self.job is not None:
            # After the first frame: the engine's first act is importing torch, which holds the
            # GIL for seconds and would keep the screen blank until it is done.
            self.call_after_refresh(self._start_engine)

    def _start_engine(self) -> None:
        self._worker = self.run_worker(self._run_job, thread=True, exit_on_error=False, name="engine",
                                       group="engine")

    def _run_job(self):
        try:
            self.outcome = self.job()
        finally:
            self.engine_done.set()
        return self.outcome

    def on_resize(self, event) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        screen = self.screen
        screen.set_class(width < MIN_WIDTH or height < MIN_HEIGHT, "-too-small")
        screen.set_class(height < 32, "-compact")
        screen.set_class(width < 110 and height >= 32, "-narrow")
        self.query_one(ReportPanel).set_class(width < 110, "-stacked")
        self.refresh_view(force=True)

    # ----- state to screen -----
    def on_state_wake(self, message: StateWake) -> None:
        self.refresh_view()

    def refresh_view(self, force: bool = False) -> None:
        state = self.store.snapshot()
        if state.version == self._shown_version and not force:
            return
        self._shown_version = state.version
        if state.status != self._shown_status:
            self._status_changed(state)
        with self.batch_update():
            self.query_one(StatusHeader).show(state, self.requested)
            self.query_one(ProgressPanel).show(state)
            self.query_one(MetricsPanel).show(state)
            self.query_one(LrPanel).show(state)
            self.query_one(EarlyStopPanel).show(state)
            self.query_one(SystemPanel).show(state)
            self.query_one(EventsPanel).show(state)
            self.query_one(ReportPanel).show(state)

    def _status_changed(self, state: RunState) -> None:
        previous, self._shown_status = self._shown_status, state.status
        self.requested = ""
        if state.status == "STOPPING" and self._exit_when_done:
            self.requested = "QUITTING…"
        if not state.active and previous in ("RUNNING", "PAUSED", "STOPPING", "PREPARING", ""):
            if state.report is not None and not self._exit_when_done:
                self.query_one(ContentSwitcher).current = "report"
        self.refresh_bindings()

    @property
    def running(self) -> bool:
        """A run this console can still act on (a replay without a Control is not)."""
        return self.store.snapshot().active and self.control is not None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in CONTROL_ACTIONS:
            if self.control is None:
                return False  # a replay: these keys do not exist
            state = self.store.snapshot()
            return True if state.status in ("RUNNING", "PAUSED") else None
        if action == "toggle_view":
            return True if self.store.snapshot().report is not None else None
        return True

    # ----- keys -----
    def _show_request(self, text: str) -> None:
        self.requested = text
        self.query_one(StatusHeader).show(self.store.snapshot(), self.requested)

    def action_toggle_pause(self) -> None:
        paused = self.control.toggle_pause()
        self._show_request("PAUSING…" if paused else "RESUMING…")

    def action_stop(self) -> None:
        self.control.request_stop("user")
        self._show_request("STOPPING…")

    def action_checkpoint(self) -> None:
        self.control.request_checkpoint()
        self.notify("saving last.pth at the next step", timeout=3)

    def action_lr_up(self) -> None:
        self.control.scale_lr(2.0)

    def action_lr_down(self) -> None:
        self.control.scale_lr(0.5)

    def action_toggle_view(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "report" if switcher.current == "dashboard" else "dashboard"

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_quit_app(self) -> None:
        if not self.running:
            self.exit(0)
            return
        if isinstance(self.screen, QuitScreen):
            return
        self.push_screen(QuitScreen(), self._quit_chosen)

    def _quit_chosen(self, choice: str | None) -> None:
        if choice == "quit":
            self.quit_and_save("quit")
        elif choice == "stop":
            self.action_stop()

    def quit_and_save(self, reason: str) -> None:
        """Stop at the next step boundary, save last.pth, then leave (keys, signals)."""
        self.quit_reason = reason
        self._exit_when_done = True
        if self.control is not None:
            self.control.request_stop("quit" if reason == "quit" else "term")
        if self._worker is None or self._worker.state not in (WorkerState.PENDING, WorkerState.RUNNING):
            self.exit(0)
        else:
            self._show_request("QUITTING…")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._worker:
            return
        if event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            if event.state == WorkerState.ERROR and self.outcome is None:
                self.outcome = event.worker.error
            self.refresh_view(force=True)
            self.refresh_bindings()
            if self._exit_when_done:
                self.exit(0)

    def on_unmount(self) -> None:
        # However the app ends, the engine thread must end too, or the process outlives the UI.
        if self.control is not None and self.running and self.control.stop_reason is None:
            self.control.request_stop("quit")
