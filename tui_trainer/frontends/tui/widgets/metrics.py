"""Loss and accuracy: live sparklines of recent steps, and the per-epoch charts.

The sparklines are drawn as one Text (block characters), not as Sparkline widgets: they change
a few times per second, and every UI millisecond spent there is taken from training."""

from __future__ import annotations

from typing import Sequence

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget

from .... import fmt
from ....state import RunState
from .base import LinePanel
from .charts import BEST_ROLE, TRAIN_ROLE, VALIDATION_ROLE, HistoryChart

BLOCKS = " ▁▂▃▄▅▆▇█"
LABEL_WIDTH = 22


def sparkline(values: Sequence[float], width: int, styles: tuple[Style, Style, Style], min_span: float = 0.0) -> Text:
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


LOSS_ROLES = ("good", "warning", "error")  # low loss is good
ACC_ROLES = ("error", "warning", "good")


class MetricsPanel(Vertical):
    """The step sparklines above the two per-epoch charts."""

    DEFAULT_CSS = """
    MetricsPanel { height: 1fr; }
    MetricsPanel #charts { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Sparks(id="sparks")
        with Horizontal(id="charts"):
            yield HistoryChart("loss", "loss", id="loss-chart")
            yield HistoryChart("acc", "accuracy %", id="acc-chart")


class Sparks(LinePanel, Widget):
    """Loss and accuracy of the recent steps, and the legend of the charts below."""

    DEFAULT_CSS = """
    Sparks { height: 3; }
    """

    def key(self, state: RunState):
        return (state.step_losses, state.step_accs, self.size.width)

    def draw(self, state: RunState) -> None:
        width = max(10, self.size.width - LABEL_WIDTH)
        self.set_text(self.sparks_text(state, self.palette, width, self.size.width))

    @staticmethod
    def sparks_text(state: RunState, palette, width: int, panel_width: int = 200) -> Text:
        losses, accs = state.step_losses, state.step_accs
        text = Text(no_wrap=True, overflow="crop")
        text.append_text(_label(palette, "step loss", fmt.metric(losses[-1]) if losses else "--"))
        text.append_text(sparkline(losses, width, tuple(getattr(palette, r) for r in LOSS_ROLES)))
        text.append("\n")
        text.append_text(_label(palette, "step acc", f"{accs[-1]:.2f}%" if accs else "--"))
        text.append_text(sparkline(accs, width, tuple(getattr(palette, r) for r in ACC_ROLES), ACC_MIN_SPAN))
        text.append("\n")
        text.append_text(next((legend for legend in _legends(palette) if legend.cell_len <= panel_width),
                              _legends(palette)[-1]))
        return text


def _legends(palette) -> list[Text]:
    """The longest that fits the panel: a legend cut to "● best" would leave the marker unexplained."""
    train, val, best = (getattr(palette, role) for role in (TRAIN_ROLE, VALIDATION_ROLE, BEST_ROLE))
    return [
        Text.assemble(("per epoch: ", palette.muted), ("━ train", train), "  ", ("━ validation", val), "  ",
                      ("● best epoch", best)),
        Text.assemble(("━ train", train), "  ", ("━ validation", val), "  ", ("● best epoch", best)),
        Text.assemble(("━ train", train), " ", ("━ val", val), " ", ("● best", best)),
    ]


def _label(palette, name: str, value: str) -> Text:
    text = Text(f"{name} ", style=palette.muted)
    text.append(value, style="bold")
    text.pad_right(LABEL_WIDTH - len(text.plain))
    return text
