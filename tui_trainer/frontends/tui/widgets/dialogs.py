"""Modal dialogs: the key help, and the quit confirmation while training runs."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from .... import fmt
from ....state import RunState
from ....vocab import Status
from ....web import driver_from_environment


@dataclass(frozen=True)
class KeyHelp:
    keys: str
    does: str
    available: bool = True


def key_help(state: RunState, *, can_control: bool, pause_requested: bool, attached: bool = False) -> list[KeyHelp]:
    """What each key does in the run's current state (the help screen's rows). attached: a
    console of `tui-trainer attach`, where ctrl+z and q leave the run alone."""
    rows: list[KeyHelp] = []
    status = state.run_status
    live = can_control and status in (Status.RUNNING, Status.PAUSED)
    if not can_control:
        why = "a read-only view of the run's events: no training to control from here"
    elif status is Status.PREPARING:
        why = "not yet: the run is starting"
    elif status is Status.STOPPING:
        why = "not any more: the run is stopping"
    else:
        why = f"not any more: the run {status.words}"
    paused = status is Status.PAUSED
    if not live:
        rows.append(KeyHelp("p / space", f"pause or resume — {why}", False))
    elif paused and pause_requested:
        rows.append(KeyHelp("p / space", "resume training"))
    elif pause_requested:
        rows.append(KeyHelp("p / space", "pausing at the next step boundary; press again to keep training"))
    else:
        rows.append(KeyHelp("p / space", "pause at the next step boundary (a paused run uses no CPU or GPU)"))
    now = "now" if paused else "at the next step boundary"
    if live:
        rows += [
            KeyHelp("s", "stop early: save, restore the best weights, evaluate, show the report"),
            KeyHelp("c", f"save a resumable last.pth {now}"),
            KeyHelp("+ / -", f"double / halve the learning rate {now} (it is {fmt.lr(state.lr)}; the plan "
                             "drawn follows)"),
        ]
    else:
        rows += [KeyHelp("s", f"stop early — {why}", False), KeyHelp("c", f"save a checkpoint — {why}", False),
                 KeyHelp("+ / -", f"change the learning rate — {why}", False)]
    if state.report is not None:
        rows.append(KeyHelp("d", "switch between the dashboard and the final report"))
    else:
        rows.append(KeyHelp("d", "the final report, once the run has ended", False))
    rows.append(KeyHelp("tab, ↑ ↓", "scroll the events panel (or the mouse wheel over it), to read older lines"))
    if driver_from_environment():  # a browser tab (--web): there is no shell to suspend to
        rows.append(KeyHelp("ctrl+z", "suspend to the shell — not in a browser: close the tab instead", False))
    elif attached and live:
        rows.append(KeyHelp("ctrl+z", "suspend this console to the shell (the run keeps training); fg brings it back"))
    else:
        rows.append(KeyHelp("ctrl+z", "suspend to the shell" + (" (training pauses first); fg brings it back" if live
                                                                else "; fg brings it back")))
    rows.append(KeyHelp("ctrl+p", "change the colour theme (every panel follows it)"))
    rows.append(KeyHelp("?", "this help"))
    if attached and live:
        rows.append(KeyHelp("q / ctrl+c", "asks: detach (the run goes on), stop the run, or cancel"))
    elif live:
        rows.append(KeyHelp("q / ctrl+c", "quit: asks first, then saves last.pth so the run can be resumed"))
    else:
        rows.append(KeyHelp("q / ctrl+c", "quit"))
    return rows


def help_table(rows: list[KeyHelp], key_style: Style, unavailable: Style) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column()
    for row in rows:
        keys_style, text_style = (key_style, "") if row.available else (unavailable, unavailable)
        table.add_row(Text(row.keys, style=keys_style), Text(row.does, style=text_style))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q,enter", "dismiss", "Close")]
    COMPONENT_CLASSES = {"help--key", "help--unavailable"}
    DEFAULT_CSS = """
    HelpScreen .help--key { color: $text-accent; text-style: bold; }
    HelpScreen .help--unavailable { color: $text-disabled; }
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 100; height: auto; max-height: 100%;
                            border: round $primary; padding: 1 2; background: $surface; }
    HelpScreen Static { width: 100%; height: auto; }
    """

    def __init__(self, rows: list[KeyHelp]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(id="help-keys")
            # one line in the widest box (94 columns inside)
            yield Static("\n[$text-disabled]dimmed: not available now[/] · [$text-muted]resume a saved run: "
                         "tui-trainer resume RUN_DIR · esc closes[/]", id="help-note")

    def on_mount(self) -> None:
        self.query_one("#help-box").border_title = "Help"
        self.draw_keys()
        self.app.theme_changed_signal.subscribe(self, lambda theme: self.call_after_refresh(self.draw_keys))

    def draw_keys(self) -> None:
        """In the theme's colours (drawn again when the theme changes)."""
        table = help_table(self.rows, self.get_component_rich_style("help--key"),
                           self.get_component_rich_style("help--unavailable"))
        self.query_one("#help-keys", Static).update(table)


class ChoiceScreen(ModalScreen[str]):
    """A question with a few keyed answers; returns the chosen answer's name. Subclasses give
    BINDINGS (each `choose('name')`) and CHOICES, the (key, what it does) lines shown."""

    QUESTION = "Training is still running."
    PAUSED_QUESTION = "Training is paused, not finished."
    CHOICES: tuple[tuple[str, str], ...] = ()
    #: the lines of CHOICES said otherwise while the run is paused (it does not train on)
    PAUSED_CHOICES: dict[str, str] = {}
    DEFAULT_CSS = """
    ChoiceScreen { align: center middle; }
    ChoiceScreen > Vertical { width: 64; height: auto; border: thick $warning; padding: 1 2; background: $surface; }
    """

    def __init__(self, paused: bool = False) -> None:
        super().__init__()
        self.paused = paused

    def compose(self) -> ComposeResult:
        question = self.PAUSED_QUESTION if self.paused else self.QUESTION
        choices = [(key, self.PAUSED_CHOICES.get(key, text) if self.paused else text) for key, text in self.CHOICES]
        with Vertical():
            yield Static(f"[b]{question}[/b]\n")
            yield Static("\n".join(f"[b $text-accent]{key}[/] {text}" for key, text in choices))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


class QuitScreen(ChoiceScreen):
    """Returns "quit" (save last.pth and leave), "stop" (stop early with the report) or "cancel"."""

    BINDINGS = [
        Binding("y,q,ctrl+c", "choose('quit')", "Quit, keep last.pth"),
        Binding("s", "choose('stop')", "Stop early with report"),
        Binding("n,escape", "choose('cancel')", "Keep training"),
    ]
    CHOICES = (("y", "quit now: save last.pth (resume with tui-trainer resume)"),
               ("s", "stop early: save, evaluate, show the final report"),
               ("n", "keep training"))
    PAUSED_CHOICES = {"n": "stay: the run stays paused"}
