"""The top line: run name, dataset, model and size, device and precision, and the status.
The status badge sits in its own column, so a long run or GPU name can never push it off."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from .... import fmt
from ....state import RunState
from ....vocab import Status
from .base import TextPanel
from .bars import frozen


# The badge's look per status: a component class whose background is a theme colour
STATUS_CLASSES = {
    Status.PREPARING: "status--starting", Status.RUNNING: "status--running", Status.PAUSED: "status--waiting",
    Status.STOPPING: "status--stopping", Status.FINISHED: "status--ended", Status.EARLY_STOPPED: "status--ended",
    Status.STOPPED: "status--ended", Status.INTERRUPTED: "status--waiting", Status.FAILED: "status--failed",
}
STATUS_CSS = """
.status--starting { background: $primary; }
.status--running { background: $success; }
.status--waiting { background: $warning; }
.status--stopping { background: $warning-darken-2; }
.status--ended { background: $secondary; }
.status--failed { background: $error; }
.status--note { background: $accent; }
.status--other { background: $boost; }
.status--starting, .status--running, .status--waiting, .status--stopping, .status--ended, .status--failed,
.status--note, .status--other { color: auto 90%; text-style: bold; }
"""


class StatusHeader(Horizontal):
    """The run on the left, its status badge on the right."""

    DEFAULT_CSS = """
    StatusHeader { height: 1; background: $boost; }
    StatusHeader #header-info { width: 1fr; height: 1; }
    StatusHeader #header-status { width: auto; height: 1; }
    """

    def compose(self) -> ComposeResult:
        yield HeaderInfo(id="header-info")
        yield HeaderStatus(id="header-status")

    def annotate(self, requested: str, note: str) -> None:
        """requested: what a key asked for, until the engine did it; note: how this console sees
        the run when it only reads it (`show` of a live run)."""
        status = self.query_one(HeaderStatus)
        status.requested, status.note = requested, note


class HeaderInfo(TextPanel, Static):
    fixed_height = True

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)

    def key(self, state: RunState):
        return (state.info, state.stage, self.size.width)

    def draw(self, state: RunState) -> None:
        self.set_content(self.info_text(state, self.palette, self.size.width))

    @staticmethod
    def info_text(state: RunState, palette, width: int = 200) -> Text:
        """The longest of a few forms that fits: at 80 columns the run name and the program's
        own name give way before the model, device and precision do."""
        info = state.info
        if info is None:
            text = Text(" tui-trainer ", style="bold", no_wrap=True, overflow="ellipsis")
            if state.stage:
                text.append("│ ", style=palette.muted)
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
            text.append(" │ ", style=palette.muted)
            text.append(f"{dev}{ranks} · {info.precision}")
            if run_name:
                text.append(" │ ", style=palette.muted)
                text.append(info.run_name, style=palette.primary)
            if text.cell_len <= width:
                return text
        text.truncate(width, overflow="ellipsis")
        return text


class HeaderStatus(TextPanel, Static):
    """The status badge, as wide as its text: a layout pass only when that width changes."""

    COMPONENT_CLASSES = set(STATUS_CLASSES.values()) | {"status--note", "status--other"}
    DEFAULT_CSS = STATUS_CSS
    requested = ""
    note = ""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)

    def key(self, state: RunState):
        return (state.status, self.requested, self.note)

    def draw(self, state: RunState) -> None:
        self.set_content(self.status_text(state, self.badge_style, self.requested, self.note))

    def set_content(self, content, lines: int | None = None) -> None:
        # the width is what may change: relayout when it does
        width = content.cell_len
        self.update(frozen(content), layout=width != self._width)
        self._width = width

    _width = -1

    def badge_style(self, name: str):
        return self.get_component_rich_style(name)

    @staticmethod
    def status_text(state: RunState, style_of, requested: str = "", note: str = "") -> Text:
        name = "status--waiting" if requested else STATUS_CLASSES.get(state.run_status, "status--other")
        text = Text(f" {requested or state.status} ", style=style_of(name))
        if note:
            text.append(f" {note} ", style=style_of("status--note"))
        return text
