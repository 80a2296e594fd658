"""The learning rate: the whole planned schedule drawn ahead, where the run is on it, and
the changes nobody planned (plateau reductions, manual changes) as they happen."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from .... import fmt
from ....state import RunState
from .bars import frozen
from .charts import CachedPlot, epoch_ticks, thin


class LrChart(CachedPlot):
    MIN_INTERVAL = 5.0  # the "now" marker crawls; redrawing it more often shows nothing new
    DEFAULT_CSS = """
    LrChart { height: 1fr; min-height: 4; }
    """

    def show(self, state: RunState) -> None:
        pos = _position(state)
        # The "now" marker moves every step; redraw only when it moves by a column.
        column = int(pos / max(1, state.num_epochs) * max(1, self.size.width))
        key = (state.lr_plan, state.lr_changes, len(state.epoch_lrs), column, self.size.width, self.size.height)
        if not self.due(state, key):
            return
        plt = self.plt
        plt.clear_figure()
        max_points = max(10, 2 * max(10, self.size.width - 10))
        if state.lr_plan:
            xs, ys = zip(*state.lr_plan)
            x, y = thin(xs, ys, max_points)
            plt.plot(x, y, color=(150, 150, 150), marker="braille")
        if state.epoch_lrs:
            x, y = thin([e - 1 for e in state.epochs_done], state.epoch_lrs, max_points)
            plt.plot(x, y, color="cyan", marker="braille")
        if state.lr_changes:
            plt.scatter([c[0] for c in state.lr_changes], [c[1] for c in state.lr_changes],
                        marker="x", color="red")
        if state.info is not None:
            plt.vertical_line(pos, color=(255, 200, 0))
            plt.xlim(0, max(1, state.num_epochs))
            epoch_ticks(plt, 0, max(1, state.num_epochs), self.size.width)
        self.replot()


def _position(state: RunState) -> float:
    if not state.steps:
        return float(max(0, state.epoch - 1))
    return max(0, state.epoch - 1) + min(state.step, state.steps) / state.steps


class LrPanel(Vertical):
    _key: tuple | None = None

    DEFAULT_CSS = """
    LrPanel { height: 1fr; }
    LrPanel #lr-text { height: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="lr-text")
        yield LrChart(id="lr-chart")

    def show(self, state: RunState) -> None:
        info = state.info
        key = (state.lr, info.scheduler if info else None, bool(state.lr_plan), bool(state.lr_changes))
        if key != self._key:
            self._key = key
            self.query_one("#lr-text", Static).update(frozen(self.label_text(state)), layout=False)
        chart = self.query_one(LrChart)
        if chart.display:
            chart.show(state)

    @staticmethod
    def label_text(state: RunState) -> Text:
        text = Text("lr ", style="grey70")
        text.append(fmt.lr(state.lr), style="bold")
        if state.info is not None:
            text.append(f"  {state.info.scheduler}", style="grey62")
            if not state.lr_plan:
                text.append("  (follows val_loss)", style="grey50")
        text.append("  ━ plan", style="grey58")
        text.append(" ━ actual", style="cyan")
        text.append(" │ now", style="yellow")
        if state.lr_changes:
            text.append(" × changed", style="red")
        return text
