"""The events panel: new bests, checkpoints, LR changes, warnings and errors, newest last,
each stamped with the run time at which it happened.

Every message is shown whole (long ones wrap under their own text) and the panel scrolls:
the mouse wheel over it, or tab to focus it and the arrow keys. It follows the newest line
unless you scrolled up to read an older one."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from .... import fmt
from ....state import RunState

LEVEL_STYLES = {"info": "grey70", "good": "green", "warning": "yellow", "error": "bold red"}
LEVEL_MARKS = {"info": "·", "good": "★", "warning": "!", "error": "✗"}


class EventsPanel(VerticalScroll):
    DEFAULT_CSS = """
    EventsPanel { height: 1fr; scrollbar-size-vertical: 1; }
    EventsPanel > #events-text { width: 100%; height: auto; }
    """

    _key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("no events yet", style="grey50"), id="events-text")

    def show(self, state: RunState) -> None:
        key = (len(state.log), state.log[-1] if state.log else None)
        if key == self._key:
            return
        self._key = key
        self._following = self.scroll_y >= self.max_scroll_y  # at the newest line: stay there
        self.query_one("#events-text", Static).update(self.log_table(state))
        if self._following:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True)

    _following = True

    def on_resize(self, event) -> None:
        # shown again after the report, or resized: keep the newest line in view
        if self._following:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True)

    @staticmethod
    def log_table(state: RunState) -> Table | Text:
        if not state.log:
            return Text("no events yet", style="grey50")
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right", no_wrap=True, style="grey50")
        table.add_column(no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        origin = state.first_t
        for line in state.log:
            style = LEVEL_STYLES.get(line.level, "")
            stamp = fmt.duration(line.t - origin) if origin is not None else ""
            table.add_row(stamp, Text(LEVEL_MARKS.get(line.level, "·"), style=style), Text(line.text, style=style))
        return table
