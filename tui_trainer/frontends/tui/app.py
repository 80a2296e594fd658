"""The live console. The App is thin: it polls the StateStore, hands every panel the newest
RunState in one batched update (each draws only what changed for it), and maps keys onto the
Control. The run belongs to a Session (session.py), which trains on a thread of its own: the
App starts it once its first frame is up, and is told when it is done."""

from __future__ import annotations

import os

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.widgets import ContentSwitcher, Footer, Static

from ... import fmt
from ...state import RunState
from ...vocab import Status, StopReason
from .layout import lay_out, too_small_text
from .messages import EngineDone, StateWake, TerminalGone
from .store import StateStore
from .widgets.base import Panel
from .widgets.dialogs import HelpScreen, QuitScreen, key_help
from .widgets.early_stop import EarlyStopPanel
from .widgets.events_log import EventsPanel
from .widgets.header import StatusHeader
from .widgets.lr import LrPanel
from .widgets.metrics import MetricsPanel
from .widgets.progress import ProgressPanel
from .widgets.report import ReportPanel
from .widgets.system import SystemPanel

# The themes offered (ctrl+p): Textual's own, less the two ANSI ones, whose colours are the
# terminal's and unknown here, so the confusion matrix's 4.5:1 contrast cannot be kept in them
# (tests/tui/test_report_colours.py checks every theme offered).
WITHOUT_THEMES = ("ansi-dark", "ansi-light")
CONTROL_ACTIONS = ("pause", "resume", "stop", "checkpoint", "lr_up", "lr_down")
FOLLOW_INTERVAL = 0.5  # seconds between reads of a followed run's events.jsonl


class TrainerApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "tui-trainer"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        # p is Pause while training and Resume once a pause was asked for: check_action hides
        # the one that does not apply, and a key runs the first binding that is allowed.
        Binding("p", "pause", "Pause", id="pause", tooltip="Pause at the next step boundary"),
        Binding("p", "resume", "Resume", id="resume", tooltip="Resume training"),
        Binding("space", "pause", "Pause", show=False),
        Binding("space", "resume", "Resume", show=False),
        Binding("s", "stop", "Stop", id="stop", tooltip="Stop early: evaluate the best model, show the report"),
        Binding("c", "checkpoint", "Save", id="checkpoint", tooltip="Save a resumable last.pth now"),
        Binding("plus", "lr_up", "LR×2", key_display="+", id="lr-up", tooltip="Double the learning rate"),
        Binding("minus", "lr_down", "LR÷2", key_display="-", id="lr-down", tooltip="Halve the learning rate"),
        Binding("d", "toggle_view", "Report", id="view", tooltip="Show the final report"),
        Binding("d", "show_dashboard", "Dashboard", id="dashboard", tooltip="Back to the dashboard"),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
        Binding("ctrl+p", "change_theme", "Theme", show=False, id="theme", tooltip="Change the colour theme"),
        Binding("q", "quit_app", "Quit", id="quit", tooltip="Quit (asks first while training)"),
        Binding("ctrl+c", "quit_app", "Quit", show=False, priority=True),
        Binding("ctrl+z", "suspend", "Suspend", show=False, tooltip="Suspend to the shell; fg brings it back"),
    ]

    follow_interval = FOLLOW_INTERVAL

    def __init__(self, store: StateStore, control=None, engine=None, *,
                 poll_interval: float = 0.25, follow=None) -> None:
        """engine: the Session training the run (`start(on_done)`, `running`, `outcome`, `error`,
        `detach(console)`); None for a replay or a scene.
        follow: for `show` of a run another process is writing, an object whose `read()`
        returns the events appended since the last call and whose `live` says whether the
        writer still holds the run directory."""
        super().__init__()
        for name in WITHOUT_THEMES:
            self.unregister_theme(name)
        self.store = store
        self.control = control
        self.engine = engine
        self.poll_interval = poll_interval
        self.follow = follow
        self._awaiting = set()  # "save", "lr": keys pressed whose result the engine has not shown yet
        self._suspend_when_paused = False
        self._resume_after_suspend = False
        self.quit_reason = ""  # quit | signal name, when the user or a signal ended the run
        self.requested = ""  # what a key asked for, shown until the engine confirms it
        self._shown_version = -1
        self._shown_status = ""
        self._exit_when_done = False
        if engine is not None:
            store.wake = lambda name: self.post_message(StateWake())

    # ----- as a client of the run's Session (session.py's Console) -----
    @property
    def sink(self) -> StateStore:
        return self.store

    @property
    def quit_requested(self) -> bool:
        return self.quit_reason == "quit"

    def leave(self, why: str) -> None:
        """A stop signal came: save last.pth, then close once the engine has."""
        self.quit_and_save(why)

    def drop(self) -> None:
        """The terminal is gone (any thread): close now; the run is not this console's to end."""
        self.post_message(TerminalGone())

    def on_terminal_gone(self, message: TerminalGone) -> None:
        self.exit(0)

    @property
    def outcome(self):
        """How the engine ended: its Outcome, or what it raised; None while it runs."""
        if self.engine is None:
            return None
        return self.engine.error if self.engine.error is not None else self.engine.outcome

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
        yield Static(too_small_text(self.store.snapshot(), stale=False), id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        titles = {"progress": "Progress", "metrics": "Loss & accuracy", "lr": "Learning rate",
                  "early": "Early stopping", "system": "System", "events": "Events", "report": "Report"}
        for widget_id, title in titles.items():
            self.query_one(f"#{widget_id}").border_title = title
        self._panels = [node for node in self.screen.walk_children() if isinstance(node, Panel)]
        self._apply_size(self.size.width, self.size.height)
        self.refresh_view(force=True)
        self.set_interval(self.poll_interval, self.refresh_view)
        # every panel's key holds the theme: a new theme redraws them all
        self.theme_changed_signal.subscribe(self, lambda theme: self.refresh_view(force=True))
        if self.follow is not None:
            self.set_interval(self.follow_interval, self._read_followed)
        self.app_resume_signal.subscribe(self, self._back_from_suspend)
        if self.engine is not None:
            # After the first frame: the engine's first act is importing torch, which holds the
            # GIL for seconds and would keep the screen blank until it is done.
            self.call_after_refresh(self._start_engine)

    def _start_engine(self) -> None:
        self.engine.start(on_done=lambda: self.post_message(EngineDone()))

    def on_resize(self, event) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        # The dashboard's screen, also while a dialog is on top of it (self.screen is then the
        # dialog): it must be laid out for the size it will be seen at once the dialog closes.
        lay_out(self.screen_stack[0], width, height)
        self.refresh_view(force=True)

    # ----- state to screen -----
    def on_state_wake(self, message: StateWake) -> None:
        self.refresh_view()

    def _read_followed(self) -> None:
        was_live = self.follow.live
        for event in self.follow.read():
            self.store.emit(event)
        # the writer dying adds no event: its going is news to the header all the same
        self.refresh_view(force=self.follow.live != was_live)

    @property
    def source_note(self) -> str:
        """`show` of a run another process is writing: said beside its status."""
        if self.follow is None or not self.store.snapshot().active or not self.follow.live:
            return ""
        return "LIVE · read-only"

    @property
    def stale(self) -> bool:
        """`show` of a run whose writer is gone without recording an end: not running, whatever
        its last event said."""
        return self.follow is not None and not self.follow.live and self.store.snapshot().active

    _panels: list[Panel] = []

    def refresh_view(self, force: bool = False) -> None:
        """The one loop: every panel gets the newest state. force: look again although the
        state is the same (a resize, a key's badge, the followed writer's going, a new theme)."""
        state = self.store.snapshot()
        if state.version == self._shown_version and not force:
            return
        self._shown_version = state.version
        if state.status != self._shown_status:
            self._status_changed(state)
        self._confirm_requests(state)
        stale = self.stale
        self.query_one(StatusHeader).annotate(self.requested or ("NOT RUNNING · no end recorded" if stale else ""),
                                              self.source_note)
        self.query_one(ProgressPanel).stale = stale
        self.query_one("#too-small", Static).update(too_small_text(state, stale))
        with self.batch_update():
            for panel in self._panels:
                panel.show(state)

    def _status_changed(self, state: RunState) -> None:
        previous, self._shown_status = self._shown_status, state.status
        self.requested = ""
        if state.run_status is Status.STOPPING and self._exit_when_done:
            self.requested = "QUITTING…"
        if state.run_status is Status.PAUSED and self._suspend_when_paused:
            self._suspend_when_paused = False
            self.call_later(self._suspend_now)
        if not state.active and (previous == "" or Status.from_label(previous).active):
            if state.report is not None and not self._exit_when_done:
                self.query_one(ContentSwitcher).current = "report"
            if previous != "" and (self.engine is not None or self.follow is not None):
                self.bell()  # seen ending live (not a replay): once, in every console watching it
        self.refresh_bindings()

    @property
    def running(self) -> bool:
        """A run this console can still act on (a replay without a Control is not)."""
        return self.store.snapshot().active and self.control is not None

    def _confirm_requests(self, state: RunState) -> None:
        """Say what the engine did about a key once it did it (a save, an LR change)."""
        if "save" in self._awaiting and state.last_manual_save is not self._save_seen:
            self._awaiting.discard("save")
            saved = state.last_manual_save
            where = f"epoch {saved.epoch}" + (f", step {saved.step}" if saved.step else "")
            self.notify(f"saved {os.path.basename(saved.path)} ({where})", timeout=4)
        if "lr" in self._awaiting and len(state.lr_changes) > self._lr_changes_seen:
            self._awaiting.discard("lr")
            self.notify(f"learning rate now {fmt.lr(state.lr)}", timeout=4)
        if not state.active:
            self._awaiting.clear()

    _save_seen = None
    _lr_changes_seen = 0

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in CONTROL_ACTIONS:
            if self.control is None:
                return False  # a replay: these keys do not exist
            if action in ("pause", "resume") and (action == "resume") != self.control.paused:
                return False  # the other one of the two is in the footer
            state = self.store.snapshot()
            return True if state.run_status in (Status.RUNNING, Status.PAUSED) else None
        # d is Report on the dashboard and Dashboard on the report: the footer names where it goes
        on_report = self.query_one(ContentSwitcher).current == "report"
        if action == "toggle_view":
            if on_report:
                return False
            return True if self.store.snapshot().report is not None else None
        if action == "show_dashboard":
            return on_report
        return True

    # ----- keys -----
    def _show_request(self, text: str) -> None:
        self.requested = text
        self.refresh_view(force=True)

    def action_pause(self) -> None:
        self.control.pause()
        if self.store.snapshot().run_status is not Status.PAUSED:
            self._show_request("PAUSING…")
        self.refresh_bindings()

    def action_resume(self) -> None:
        self.control.resume()
        self._resume_after_suspend = False
        if self.store.snapshot().run_status is Status.PAUSED:
            self._show_request("RESUMING…")
        else:
            self._show_request("")  # a pause asked for and taken back before the engine paused
        self.refresh_bindings()

    def action_stop(self) -> None:
        self.control.request_stop(StopReason.USER.value)
        self._show_request("STOPPING…")

    def _when(self) -> str:
        return "now" if self.store.snapshot().run_status is Status.PAUSED else "at the next step"

    def action_checkpoint(self) -> None:
        self._save_seen = self.store.snapshot().last_manual_save
        self._awaiting.add("save")
        self.control.request_checkpoint()
        self.notify(f"saving last.pth {self._when()}…", timeout=3)

    def _scale_lr(self, factor: float) -> None:
        state = self.store.snapshot()
        if "lr" not in self._awaiting:
            self._lr_changes_seen = len(state.lr_changes)
        self._awaiting.add("lr")
        self.control.scale_lr(factor)
        self.notify(f"learning rate {'×2' if factor > 1 else '÷2'} {self._when()}…", timeout=3)

    def action_lr_up(self) -> None:
        self._scale_lr(2.0)

    def action_lr_down(self) -> None:
        self._scale_lr(0.5)

    def action_suspend(self) -> None:
        """Ctrl+Z: pause the training first (so the time away counts as paused, not as a slow
        step), then stop the process as a shell expects; `fg` brings it back and resumes."""
        state = self.store.snapshot()
        if self.running and state.run_status is Status.RUNNING and not self.control.paused:
            self._resume_after_suspend = True
            self._suspend_when_paused = True
            self.control.pause()
            self._show_request("SUSPENDING…")
            return
        self._suspend_now()

    def _suspend_now(self) -> None:
        self.action_suspend_process()

    def _back_from_suspend(self, app) -> None:
        if self._resume_after_suspend and self.control is not None:
            self._resume_after_suspend = False
            self.control.resume()
            self._show_request("RESUMING…")
            self.refresh_bindings()

    def action_toggle_view(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "report" if switcher.current == "dashboard" else "dashboard"
        self.refresh_bindings()

    def action_show_dashboard(self) -> None:
        self.query_one(ContentSwitcher).current = "dashboard"
        self.refresh_bindings()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_rows(self.store.snapshot())))

    def help_rows(self, state) -> list:
        return key_help(state, can_control=self.control is not None,
                        pause_requested=self.control is not None and self.control.paused)

    def action_quit_app(self) -> None:
        if not self.running:
            self.exit(0)
            return
        if isinstance(self.screen, QuitScreen):
            return
        self.push_screen(QuitScreen(paused=self.store.snapshot().run_status is Status.PAUSED), self._quit_chosen)

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
            self.control.request_stop((StopReason.QUIT if reason == "quit" else StopReason.TERM).value)
        if self.engine is None or not self.engine.running:
            self.exit(0)
        else:
            self._show_request("QUITTING…")

    def on_engine_done(self, message: EngineDone) -> None:
        self.refresh_view(force=True)
        self.refresh_bindings()
        if self._exit_when_done:
            self.exit(0)

    def on_unmount(self) -> None:
        # However the app ends, the run's Session hears of it: it decides what the console
        # leaving means for the engine thread (today: stop, or the process outlives the UI).
        if self.engine is not None:
            self.engine.detach(self)
