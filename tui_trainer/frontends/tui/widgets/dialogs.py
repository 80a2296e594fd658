"""Modal dialogs: the key help, and the quit confirmation while training runs."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("p / space", "pause or resume at the next step boundary (a paused run uses no CPU or GPU)"),
    ("s", "stop early: finish the step, save, restore the best weights, evaluate, show the report"),
    ("c", "save a checkpoint now (last.pth, resumable)"),
    ("+ / -", "multiply / divide the learning rate by 2 (logged, kept in checkpoints)"),
    ("d", "switch between the dashboard and the final report"),
    ("?", "this help"),
    ("q / ctrl+c", "quit; while training asks first, then saves last.pth so the run can be resumed"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q,enter", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: auto; max-width: 100; height: auto; border: round $primary;
                            padding: 1 2; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with Vertical():
            yield Static("[b]Keys[/b]\n")
            yield Static(table)
            yield Static("\n[dim]resume later with: tui-trainer resume RUN_DIR · esc to close[/dim]")


class QuitScreen(ModalScreen[str]):
    """Returns "quit" (save last.pth and leave), "stop" (stop early with the report) or "cancel"."""

    BINDINGS = [
        Binding("y,q,ctrl+c", "choose('quit')", "Quit, keep last.pth"),
        Binding("s", "choose('stop')", "Stop early with report"),
        Binding("n,escape", "choose('cancel')", "Keep training"),
    ]
    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 64; height: auto; border: thick $warning; padding: 1 2; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("[b]Training is still running.[/b]\n")
            yield Static("[b cyan]y[/] quit now: save last.pth (resume with tui-trainer resume)\n"
                         "[b cyan]s[/] stop early: save, evaluate, show the final report\n"
                         "[b cyan]n[/] keep training")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
