"""The events panel: new bests, checkpoints, LR changes, warnings and errors, newest last,
each stamped with the run time at which it happened.

Every message is shown whole (long ones wrap under their own text) and the panel scrolls:
the mouse wheel over it, or tab to focus it and the arrow keys. It follows the newest line
unless you scrolled up to read an older one.

A RichLog: a new line is rendered once, when it arrives, and appended; redrawing the whole log
(a layout pass of the screen) for every line would cost the training time on short epochs. A
new width wraps every line again.
"""

from __future__ import annotations

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widgets import RichLog

from .... import fmt
from ....state import LogLine, RunState
from .base import Panel

LEVEL_ROLES = {"info": "muted", "good": "good", "warning": "warning", "error": "error"}
LEVEL_MARKS = {"info": "·", "good": "★", "warning": "!", "error": "✗"}
STAMP_WIDTH = 6  # 58.5s, 1m04s, 2h03m, 1d04h


class EventsPanel(Panel, RichLog):
    DEFAULT_CSS = """
    EventsPanel { height: 1fr; overflow-y: scroll; overflow-x: hidden; scrollbar-size-vertical: 1; background: transparent; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(wrap=True, min_width=1, auto_scroll=False, **kwargs)
        self._written: LogLine | None = None  # the newest line on the panel
        self._look: tuple | None = None  # the width and theme the lines on the panel were drawn for
        self._empty = True

    def key(self, state: RunState):
        return (state.log, self.scrollable_content_region.width)

    def on_resize(self, event) -> None:
        # RichLog holds back writes until it knows its size, which its own handler (called
        # after Panel's) records: record it first, so the lines drawn now are there to scroll to.
        RichLog.on_resize(self, event)

    def draw(self, state: RunState) -> None:
        width = self.scrollable_content_region.width
        if not width:
            return  # not laid out yet: drawn once it has a size
        if (width, self.app.theme) != self._look:
            self._rewrite(state, width)
            return
        log = state.log
        if not log or log[-1] is self._written:
            return
        start = next((i + 1 for i in range(len(log) - 1, -1, -1) if log[i] is self._written), None)
        if start is None:  # not on the panel any more (the log keeps its last lines): start over
            self._rewrite(state, width)
            return
        self._append(log[start:], state.first_t, width)

    def _rewrite(self, state: RunState, width: int) -> None:
        """A new width wraps every line again; a new theme colours them again."""
        self._look = (width, self.app.theme)
        self.clear()
        self._written = None
        self._empty = True
        if not state.log:
            self.write(Text("no events yet", style=self.palette.muted), width=width)
            return
        self._append(state.log, state.first_t, width)
        self.scroll_end(animate=False, immediate=True)

    def _append(self, lines, origin: float | None, width: int) -> None:
        if self._empty:
            self.clear()
            self._empty = False
        following = self.scroll_y >= self.max_scroll_y
        palette = self.palette
        for line in lines:
            self.write(line_table(line, origin, palette), width=width, scroll_end=False)
        self._written = lines[-1]
        if following:
            self.scroll_end(animate=False, immediate=True)


def line_table(line: LogLine, origin: float | None, palette) -> Table:
    """One event: its time, a mark for its level, the message wrapped under itself."""
    style = getattr(palette, LEVEL_ROLES.get(line.level, "muted"))
    if line.level == "error":
        style += Style(bold=True)
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(width=STAMP_WIDTH, justify="right", no_wrap=True, style=palette.muted)
    table.add_column(width=1, no_wrap=True)
    table.add_column(ratio=1, overflow="fold")
    stamp = fmt.duration(line.t - origin) if origin is not None else ""
    table.add_row(stamp, Text(LEVEL_MARKS.get(line.level, "·"), style=style), Text(line.text, style=style))
    return table
