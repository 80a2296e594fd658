"""Epoch and step bars, throughput, elapsed time and ETA (pauses and warm-up excluded)."""

from __future__ import annotations

from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from .... import fmt
from ....state import RunState
from .base import StatePanel

PHASE_TEXT = {"training": "training", "validating": "validating", "evaluating": "final evaluation"}


class ProgressPanel(StatePanel, Static):
    DEFAULT_CSS = """
    ProgressPanel { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)

    def show(self, state: RunState) -> None:
        key = (state.version if state.active else (state.status, state.end), self.size.width)
        if self.remember(state, key):
            self.update(self.render_table(state))

    @staticmethod
    def render_table(state: RunState) -> Table:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=14, no_wrap=True)
        grid.add_column(ratio=1, no_wrap=True)
        grid.add_column(width=6, justify="right", no_wrap=True)
        if state.info is None:
            grid.add_row(Text("preparing", style="bold"), Text(f"{state.stage or 'starting'}…", style="italic cyan"),
                         Text(""))
            grid.add_row(Text(""), Text(state.stage_detail, style="grey50"), Text(""))
            return grid
        epoch_frac = state.progress
        grid.add_row(Text(f"epoch {max(state.epoch, 1)}/{state.num_epochs}", style="bold"),
                     ProgressBar(total=1.0, completed=epoch_frac, complete_style="cyan",
                                 finished_style="cyan"),
                     Text(f"{epoch_frac * 100:.0f}%"))
        steps = state.steps or 1
        if state.phase == "validating":
            step_text, step_frac, style = "validating", 1.0, "magenta"
        else:
            step_frac = min(1.0, state.step / steps)
            step_text, style = f"step {state.step}/{state.steps}", "green"
        grid.add_row(Text(step_text), ProgressBar(total=1.0, completed=step_frac, complete_style=style,
                                                  finished_style=style),
                     Text(f"{step_frac * 100:.0f}%"))
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(fmt.rate(state.samples_per_sec), style="bold")
        line.append(" samples · elapsed ")
        line.append(fmt.duration(state.elapsed), style="bold")
        line.append(" · ETA ")
        line.append(fmt.duration(state.eta) if state.active else "done", style="bold")
        if state.epoch_loss is not None and state.phase == "training":
            line.append(f" · loss {state.epoch_loss:.4f} · acc {state.epoch_acc:.2f}%")
        if state.skipped:
            line.append(f" · skipped {state.skipped}", style="yellow")
        phase = PHASE_TEXT.get(state.phase, "") if state.active else ""
        if state.info.compiled and state.samples_per_sec is None and state.active:
            phase = "compiling"
        grid.add_row(Text(phase, style="italic grey62"), line, Text(""))
        return grid
