"""The learning rate: the whole planned schedule drawn ahead, where the run is on it, and
the changes nobody planned (plateau reductions, manual changes) as they happen."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from .... import fmt
from ....state import RunState
from .base import TextPanel
from .charts import Chart, epoch_ticks, row_ticks, thin
from .plot import Figure, plot_rows


# the roles of what the chart draws (the legend above names them)
PLAN_ROLE, ACTUAL_ROLE, CHANGE_ROLE, NOW_ROLE = "muted", "primary", "error", "warning"


class LrChart(Chart):
    DEFAULT_CSS = """
    LrChart { height: 1fr; min-height: 4; }
    """

    def key(self, state: RunState):
        # the "now" marker moves a column at a time: drawn again when it does
        column = int(_position(state) / max(1, state.num_epochs) * max(1, self.size.width))
        return (state.lr_plan, state.epoch_lrs, state.lr_changes, state.lr, state.num_epochs,
                state.info is not None, column, self.size)

    def figure(self, state: RunState) -> Figure:
        # no top and right frame lines: in a side panel a row of chart is worth more than a border
        fig = Figure(box=False)
        width = self.size.width
        max_points = max(10, 2 * max(10, width - 10))
        shown: list[float] = []
        if state.lr_plan:
            xs, ys = zip(*state.lr_plan)
            x, y = thin(xs, ys, max_points)
            fig.lines.append((x, y, PLAN_ROLE))
            shown += y
        if state.epoch_lrs:
            x, y = thin([e - 1 for e in state.epochs_done], state.epoch_lrs, max_points)
            fig.lines.append((x, y, ACTUAL_ROLE))
            shown += y
        for change in state.lr_changes:
            fig.points.append((change[0], change[1], "x", CHANGE_ROLE))
            shown.append(change[1])
        if state.lr is not None:
            shown.append(state.lr)
        lo, hi = lr_range(shown)
        fig.ylim = (lo, hi)
        rows = plot_rows(self.size.height, False, False)
        if shown:  # no LR known yet (preparing): no made-up axis values
            fig.yticks = list(zip(*row_ticks(lo, hi, rows, lambda v: "0" if v == 0 else fmt.lr(v),
                                             most=min(5, max(3, rows // 4)))))
        if state.info is not None:
            fig.vlines.append((_position(state), NOW_ROLE))
            fig.xlim, fig.xticks = epoch_ticks(0, max(1, state.num_epochs), width)
        return fig


MIN_SPAN = 0.5  # the axis spans at least half its top value: a 0.1% change stays a small one


def lr_range(values: list[float]) -> tuple[float, float]:
    """The LR axis: from the lowest to the highest value drawn, at least MIN_SPAN of the top
    (so a constant LR is a flat line near the top, not noise blown up to the full height)."""
    finite = [v for v in values if math.isfinite(v) and v >= 0]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi <= 0:
        return 0.0, 1.0
    return min(lo, hi * (1 - MIN_SPAN)), hi


def _position(state: RunState) -> float:
    if not state.steps:
        return float(max(0, state.epoch - 1))
    return max(0, state.epoch - 1) + min(state.step, state.steps) / state.steps


class LrPanel(Vertical):
    """The LR label above the LR chart."""

    DEFAULT_CSS = """
    LrPanel { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield LrLabel(id="lr-text")
        yield LrChart(id="lr-chart")


class LrLabel(TextPanel, Static):
    """The LR now and the scheduler; with the chart shown, its legend (on a second line when
    the first has no room for it: a legend cut to "━ plan ━" explains nothing)."""

    DEFAULT_CSS = """
    LrLabel { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)

    @property
    def legend(self) -> bool:
        """The chart is there to explain (it is left out at 80x24)."""
        return self.parent is not None and self.parent.query_one(LrChart).display

    def key(self, state: RunState):
        info = state.info
        return (state.lr, info.scheduler if info else None, bool(state.lr_plan), bool(state.lr_changes),
                self.legend, self.size.width)

    def draw(self, state: RunState) -> None:
        self.set_content(self.label_text(state, self.palette, self.size.width, self.legend))

    @staticmethod
    def label_text(state: RunState, palette, width: int = 80, legend: bool = True) -> Text:
        text = Text("lr ", style=palette.muted)
        text.append(fmt.lr(state.lr), style="bold")
        if state.info is not None:
            text.append(f"  {state.info.scheduler}", style=palette.muted)
            if not state.lr_plan:
                text.append("  (follows val_loss)", style=palette.muted)
        if not legend or state.info is None:
            return text
        key = Text.assemble(("━ plan ", getattr(palette, PLAN_ROLE)) if state.lr_plan else "",
                            ("━ actual", getattr(palette, ACTUAL_ROLE)), (" │ now", getattr(palette, NOW_ROLE)))
        if state.lr_changes:
            key.append(" × changed", style=getattr(palette, CHANGE_ROLE))
        text.append("\n" if text.cell_len + 2 + key.cell_len > width else "  ")
        text.append_text(key)
        return text
