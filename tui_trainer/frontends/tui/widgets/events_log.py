"""The events panel: new bests, checkpoints, LR changes, warnings and errors, newest last,
each stamped with the run time at which it happened."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from .... import fmt
from ....state import RunState
from .base import StatePanel, text_lines

LEVEL_STYLES = {"info": "grey70", "good": "green", "warning": "yellow", "error": "bold red"}
LEVEL_MARKS = {"info": "·", "good": "★", "warning": "!", "error": "✗"}


class EventsPanel(StatePanel, Static):
    DEFAULT_CSS = """
    EventsPanel { height: 1fr; }
    """
    fixed_height = True  # 1fr here, a fixed number of lines in the app's stylesheet

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)

    def show(self, state: RunState) -> None:
        key = (len(state.log), state.log[-1] if state.log else None, self.size.height, self.size.width)
        if not self.remember(state, key):
            return
        text = self.render_text(state, max(1, self.size.height))
        self.set_content(text, text_lines(text))

    @staticmethod
    def render_text(state: RunState, lines: int) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        origin = state.first_t
        shown = state.log[-lines:]
        if not shown:
            return Text("no events yet", style="grey50")
        for i, line in enumerate(shown):
            stamp = fmt.duration(line.t - origin) if origin is not None else ""
            if i:
                text.append("\n")
            text.append(f"{stamp:>7} ", style="grey50")
            style = LEVEL_STYLES.get(line.level, "")
            text.append(f"{LEVEL_MARKS.get(line.level, '·')} ", style=style)
            text.append(line.text, style=style)
        return text
