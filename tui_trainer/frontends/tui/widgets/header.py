"""The top line: run name, dataset, model and size, device and precision, and the status.
The status badge sits in its own column, so a long run or GPU name can never push it off."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from .... import fmt
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

    def show(self, state: RunState, requested: str = "", note: str = "") -> None:
        """note: how this console sees the run when it only reads it (`show` of a live run)."""
        self._last = (state, requested, note)
        status = self.status_text(state, requested, note)
        width = max(0, self.size.width - status.cell_len)
        key = (state.status, state.stage, state.info, requested, note, width)
        if key == self._key:
            return
        self._key = key
        self.query_one("#header-info", Static).update(frozen(self.info_text(state, width)), layout=False)
        # the badge is as wide as its text: a layout pass only when that width changes
        relayout = status.cell_len != self._status_width
        self._status_width = status.cell_len
        self.query_one("#header-status", Static).update(frozen(status), layout=relayout)

    _last: tuple | None = None

    def on_resize(self, event) -> None:
        if self._last is not None:
            self.show(*self._last)

    @staticmethod
    def info_text(state: RunState, width: int = 200) -> Text:
        """The longest of a few forms that fits: at 80 columns the run name and the program's
        own name give way before the model, device and precision do."""
        info = state.info
        if info is None:
            text = Text(" tui-trainer ", style="bold", no_wrap=True, overflow="ellipsis")
            if state.stage:
                text.append("│ ", style="grey50")
                text.append(f"preparing: {state.stage}…", style="italic")
            return text
        device = info.device_name if info.device_name and info.device_name != info.device else info.device
        short_device = device.removeprefix("NVIDIA ").removeprefix("GeForce ")
        ranks = f" ×{info.world_size}" if info.world_size > 1 else ""
        forms = [
            (True, f"{info.num_params:,} params", device, True),
            (False, f"{info.num_params:,} params", short_device, True),
            (False, f"{info.num_params:,} params", short_device, False),
            (False, fmt.count(info.num_params), short_device, False),
        ]
        for name, params, dev, run_name in forms:
            text = Text(" tui-trainer │ " if name else " ", style="bold", no_wrap=True, overflow="ellipsis")
            text.append(f"{info.dataset} · {info.model} ({params})", style="bold")
            text.append(" │ ", style="grey50")
            text.append(f"{dev}{ranks} · {info.precision}")
            if run_name:
                text.append(" │ ", style="grey50")
                text.append(info.run_name, style="cyan")
            if text.cell_len <= width:
                return text
        text.truncate(width, overflow="ellipsis")
        return text

    @staticmethod
    def status_text(state: RunState, requested: str = "", note: str = "") -> Text:
        style = "bold black on yellow" if requested else STATUS_STYLES.get(state.run_status, "bold")
        text = Text(f" {requested or state.status} ", style=style)
        if note:
            text.append(f" {note} ", style="bold black on magenta")
        return text
