"""The top line: run name, dataset, model and size, device and precision, and the status."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ....state import RunState
from .bars import STATUS_STYLES


class StatusHeader(Static):
    DEFAULT_CSS = """
    StatusHeader { height: 1; background: $boost; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self._key: tuple | None = None

    def show(self, state: RunState, requested: str = "") -> None:
        key = (state.status, state.stage, state.info, requested)
        if key == self._key:
            return
        self._key = key
        self.update(self.render_text(state, requested))

    @staticmethod
    def render_text(state: RunState, requested: str = "") -> Text:
        text = Text(" tui-trainer ", style="bold")
        info = state.info
        if info is not None:
            text.append("│ ", style="grey50")
            text.append(info.run_name, style="bold cyan")
            text.append(" │ ", style="grey50")
            text.append(f"{info.dataset} · {info.model} ({info.num_params:,} params)")
            text.append(" │ ", style="grey50")
            device = info.device_name if info.device_name and info.device_name != info.device else info.device
            ranks = f" ×{info.world_size}" if info.world_size > 1 else ""
            text.append(f"{device}{ranks} · {info.precision}")
        elif state.stage:
            text.append("│ ", style="grey50")
            text.append(f"preparing: {state.stage}…", style="italic")
        status = state.status
        label = f" {requested or status} "
        style = "bold black on yellow" if requested else STATUS_STYLES.get(status, "bold")
        text.append(" ")
        text.append(label, style=style)
        return text
