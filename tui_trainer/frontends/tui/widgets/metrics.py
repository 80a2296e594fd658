"""Loss and accuracy: live sparklines of recent steps, and the per-epoch charts.

The sparklines are drawn as one Text (block characters), not as Sparkline widgets: they change
a few times per second, and every UI millisecond spent there is taken from training."""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from ....state import RunState
from .bars import frozen
from .charts import HistoryChart

BLOCKS = " ▁▂▃▄▅▆▇█"
LABEL_WIDTH = 22


def sparkline(values: Sequence[float], width: int, styles: tuple[str, str, str]) -> Text:
    """The last `width` values as block characters scaled between their min and max; the
    lowest third, middle third and top third of the range in styles[0], [1], [2]."""
    values = list(values)[-width:]
    text = Text(no_wrap=True)
    if not values:
        return text
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    run, run_style = [], None
    for v in values:  # one span per run of equal style: fewer segments to draw
        level = (v - lo) / span
        style = styles[min(2, int(level * 3))]
        if style != run_style and run:
            text.append("".join(run), style=run_style)
            run = []
        run_style = style
        run.append(BLOCKS[1 + int(round(level * 7))])
    text.append("".join(run), style=run_style)
    return text


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

    def show(self, state: RunState) -> None:
        sparks = self.query_one("#sparks", Static)
        width = max(10, sparks.size.width - LABEL_WIDTH)
        key = (state.step_losses, width)
        if key != self._key:
            self._key = key
            sparks.update(frozen(self.sparks_text(state, width)), layout=False)
        for chart in self.query(HistoryChart):
            chart.show(state)

    def on_resize(self, event) -> None:
        self._key = None

    @staticmethod
    def sparks_text(state: RunState, width: int) -> Text:
        losses, accs = state.step_losses, state.step_accs
        text = Text(no_wrap=True, overflow="crop")
        text.append_text(_label("step loss", losses[-1] if losses else None, "{:.4f}"))
        text.append_text(sparkline(losses, width, LOSS_STYLES))
        text.append("\n")
        text.append_text(_label("step acc", accs[-1] if accs else None, "{:.2f}%"))
        text.append_text(sparkline(accs, width, ACC_STYLES))
        text.append("\n")
        text.append_text(_LEGEND)
        return text


_LEGEND = Text.assemble(("per epoch: ", "grey70"), ("━ train", "cyan"), "  ", ("━ validation", "orange1"), "  ",
                        ("● best epoch", "green"))


def _label(name: str, value: float | None, pattern: str) -> Text:
    text = Text(f"{name} ", style="grey70")
    text.append("--" if value is None else pattern.format(value), style="bold")
    text.pad_right(LABEL_WIDTH - len(text.plain))
    return text
