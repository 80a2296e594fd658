"""Loss and accuracy: live sparklines of recent steps, and the per-epoch charts.

The sparklines are drawn as one Text (block characters), not as Sparkline widgets: they change
a few times per second, and every UI millisecond spent there is taken from training."""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from .... import fmt
from ....state import RunState
from .bars import frozen
from .charts import HistoryChart

BLOCKS = " ▁▂▃▄▅▆▇█"
LABEL_WIDTH = 22


def sparkline(values: Sequence[float], width: int, styles: tuple[str, str, str], min_span: float = 0.0) -> Text:
    """The last `width` values as block characters scaled between their min and max; the
    lowest third, middle third and top third of the range in styles[0], [1], [2].

    The range is at least `min_span` wide, reaching down from the max: an accuracy steady at
    100% is a full green bar, not noise blown up to the whole height (or, all values equal,
    a red line along the bottom)."""
    values = list(values)[-width:]
    text = Text(no_wrap=True)
    if not values:
        return text
    lo, hi = min(values), max(values)
    lo = min(lo, hi - min_span)
    span = (hi - lo) or 1.0
    run, run_style = [], None
    for v in values:  # one span per run of equal style: fewer segments to draw
        level = (v - lo) / span if hi > lo else 0.5
        style = styles[min(2, int(level * 3))]
        if style != run_style and run:
            text.append("".join(run), style=run_style)
            run = []
        run_style = style
        run.append(BLOCKS[1 + int(round(level * 7))])
    text.append("".join(run), style=run_style)
    return text


ACC_MIN_SPAN = 5.0  # percentage points


LOSS_STYLES = ("green", "yellow", "red")  # low loss is good
ACC_STYLES = ("red", "yellow", "green")


class MetricsPanel(Vertical):
    DEFAULT_CSS = """
    MetricsPanel { height: 1fr; }
    MetricsPanel #sparks { height: 3; }
    MetricsPanel #charts { height: 1fr; }
    """

    _key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="sparks")
        with Horizontal(id="charts"):
            yield HistoryChart("loss", "loss", id="loss-chart")
            yield HistoryChart("acc", "accuracy %", id="acc-chart")

    _state: RunState | None = None

    def show(self, state: RunState) -> None:
        self._state = state
        sparks = self.query_one("#sparks", Static)
        width = max(10, sparks.size.width - LABEL_WIDTH)
        key = (state.step_losses, width)
        if key != self._key:
            self._key = key
            sparks.update(frozen(self.sparks_text(state, width, sparks.size.width)), layout=False)
        for chart in self.query(HistoryChart):
            chart.show(state)

    def on_resize(self, event) -> None:
        # the sparklines' width is known only after layout: draw them again at the new size
        self._key = None
        if self._state is not None:
            self.show(self._state)

    @staticmethod
    def sparks_text(state: RunState, width: int, panel_width: int = 200) -> Text:
        losses, accs = state.step_losses, state.step_accs
        text = Text(no_wrap=True, overflow="crop")
        text.append_text(_label("step loss", fmt.metric(losses[-1]) if losses else "--"))
        text.append_text(sparkline(losses, width, LOSS_STYLES))
        text.append("\n")
        text.append_text(_label("step acc", f"{accs[-1]:.2f}%" if accs else "--"))
        text.append_text(sparkline(accs, width, ACC_STYLES, ACC_MIN_SPAN))
        text.append("\n")
        text.append_text(next((legend for legend in _LEGENDS if legend.cell_len <= panel_width), _LEGENDS[-1]))
        return text


# the longest that fits the panel: a legend cut to "● best" would leave the marker unexplained
_LEGENDS = [
    Text.assemble(("per epoch: ", "grey70"), ("━ train", "cyan"), "  ", ("━ validation", "orange1"), "  ",
                  ("● best epoch", "green")),
    Text.assemble(("━ train", "cyan"), "  ", ("━ validation", "orange1"), "  ", ("● best epoch", "green")),
    Text.assemble(("━ train", "cyan"), " ", ("━ val", "orange1"), " ", ("● best", "green")),
]


def _label(name: str, value: str) -> Text:
    text = Text(f"{name} ", style="grey70")
    text.append(value, style="bold")
    text.pad_right(LABEL_WIDTH - len(text.plain))
    return text
