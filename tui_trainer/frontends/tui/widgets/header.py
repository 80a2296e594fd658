"""The top line: run name, dataset, model and size, device and precision, and the status.
The status badge sits in its own column, so a long run or GPU name can never push it off."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from ....state import RunState
from .bars import STATUS_STYLES, frozen


class StatusHeader(Horizontal):
    DEFAULT_CSS = """
    StatusHeader { height: 1; background: $boost; }
    StatusHeader #header-info { width: 1fr; height: 1; }
    StatusHeader #header-status { width: auto; height: 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._key: tuple | None = None
        self._status_width = -1

    def compose(self) -> ComposeResult:
        yield Static("", id="header-info")
        yield Static("", id="header-status")

    def show(self, state: RunState, requested: str = "") -> None:
        key = (state.status, state.stage, state.info, requested)
        if key == self._key:
            return
        self._key = key
        self.query_one("#header-info", Static).update(frozen(self.info_text(state)), layout=False)
        status = self.status_text(state, requested)
        # the badge is as wide as its text: a layout pass only when that width changes
        relayout = status.cell_len != self._status_width
        self._status_width = status.cell_len
        self.query_one("#header-status", Static).update(frozen(status), layout=relayout)

    @staticmethod
    def info_text(state: RunState) -> Text:
        text = Text(" tui-trainer ", style="bold", no_wrap=True, overflow="ellipsis")
        info = state.info
        if info is not None:
            text.append("│ ", style="grey50")
            text.append(f"{info.dataset} · {info.model} ({info.num_params:,} params)", style="bold")
            text.append(" │ ", style="grey50")
            device = info.device_name if info.device_name and info.device_name != info.device else info.device
            ranks = f" ×{info.world_size}" if info.world_size > 1 else ""
            text.append(f"{device}{ranks} · {info.precision}")
            text.append(" │ ", style="grey50")
            text.append(info.run_name, style="cyan")
        elif state.stage:
            text.append("│ ", style="grey50")
            text.append(f"preparing: {state.stage}…", style="italic")
        return text

    @staticmethod
    def status_text(state: RunState, requested: str = "") -> Text:
        style = "bold black on yellow" if requested else STATUS_STYLES.get(state.status, "bold")
        return Text(f" {requested or state.status} ", style=style)
