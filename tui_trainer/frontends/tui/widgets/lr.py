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
from .bars import frozen
from .charts import CachedPlot, epoch_ticks, row_ticks, thin


class LrChart(CachedPlot):
    DEFAULT_CSS = """
    LrChart { height: 1fr; min-height: 4; }
    """

    def show(self, state: RunState) -> None:
        pos = _position(state)
        # The "now" marker and the "actual" line advance with the run: redraw for them at most
        # every CRAWL_INTERVAL (the LR label above shows the LR now). A new plan or an LR change
        # redraws at once.
        column = int(pos / max(1, state.num_epochs) * max(1, self.size.width))
        data_key = (self.size.width, self.size.height)
        if not self.due(state, data_key, (column, len(state.epoch_lrs)), (state.lr_plan, state.lr_changes)):
            return
        plt = self.plt
        plt.clear_figure()
        # no top and right frame lines: in a side panel a row of chart is worth more than a border
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        max_points = max(10, 2 * max(10, self.size.width - 10))
        shown: list[float] = []
        if state.lr_plan:
            xs, ys = zip(*state.lr_plan)
            x, y = thin(xs, ys, max_points)
            plt.plot(x, y, color=(150, 150, 150), marker="braille")
            shown += y
        if state.epoch_lrs:
            x, y = thin([e - 1 for e in state.epochs_done], state.epoch_lrs, max_points)
            plt.plot(x, y, color="cyan", marker="braille")
            shown += y
        if state.lr_changes:
            plt.scatter([c[0] for c in state.lr_changes], [c[1] for c in state.lr_changes],
                        marker="x", color="red")
            shown += [c[1] for c in state.lr_changes]
        if state.lr is not None:
            shown.append(state.lr)
        lo, hi = lr_range(shown)
        plt.ylim(lo, hi)
        rows = self.size.height - 2  # less the x axis and its labels
        plt.yticks(*row_ticks(lo, hi, rows, lambda v: "0" if v == 0 else fmt.lr(v), most=min(5, max(3, rows // 4))))
        if state.info is not None:
            plt.vertical_line(pos, color=(255, 200, 0))
            epoch_ticks(plt, 0, max(1, state.num_epochs), self.size.width)
        self.replot()


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
    _key: tuple | None = None
    _lines = 1

    DEFAULT_CSS = """
    LrPanel { height: 1fr; }
    LrPanel #lr-text { height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="lr-text")
        yield LrChart(id="lr-chart")

    _state: RunState | None = None

    def show(self, state: RunState) -> None:
        self._state = state
        info = state.info
        chart = self.query_one(LrChart)
        label = self.query_one("#lr-text", Static)
        key = (state.lr, info.scheduler if info else None, bool(state.lr_plan), bool(state.lr_changes),
               chart.display, label.size.width)
        if key != self._key:
            self._key = key
            text = self.label_text(state, label.size.width, legend=chart.display)
            lines = text.plain.count("\n") + 1
            label.update(frozen(text), layout=lines != self._lines)
            self._lines = lines
        if chart.display:
            chart.show(state)

    def on_resize(self, event) -> None:
        self._key = None
        if self._state is not None:
            self.show(self._state)

    @staticmethod
    def label_text(state: RunState, width: int = 80, legend: bool = True) -> Text:
        """The LR now and the scheduler; with the chart shown, its legend (on a second line when
        the first has no room for it: a legend cut to "━ plan ━" explains nothing)."""
        text = Text("lr ", style="grey70")
        text.append(fmt.lr(state.lr), style="bold")
        if state.info is not None:
            text.append(f"  {state.info.scheduler}", style="grey62")
            if not state.lr_plan:
                text.append("  (follows val_loss)", style="grey50")
        if not legend or state.info is None:
            return text
        key = Text.assemble(("━ plan ", "grey58") if state.lr_plan else "", ("━ actual", "cyan"), (" │ now", "yellow"))
        if state.lr_changes:
            key.append(" × changed", style="red")
        text.append("\n" if text.cell_len + 2 + key.cell_len > width else "  ")
        text.append_text(key)
        return text
