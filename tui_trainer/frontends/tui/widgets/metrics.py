"""Loss and accuracy: live sparklines of recent steps, and the per-epoch charts."""

from __future__ import annotations

from statistics import fmean

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from ....state import RunState
from .charts import HistoryChart


class MetricsPanel(Vertical):
    DEFAULT_CSS = """
    MetricsPanel { height: 1fr; }
    MetricsPanel .spark-row { height: 1; }
    MetricsPanel .spark-label { width: 22; }
    MetricsPanel Sparkline { width: 1fr; height: 1; }
    MetricsPanel #charts { height: 1fr; }
    MetricsPanel #chart-legend { height: 1; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal(classes="spark-row"):
            yield Static("", id="loss-label", classes="spark-label")
            yield Sparkline((), id="loss-spark", summary_function=fmean)
        with Horizontal(classes="spark-row"):
            yield Static("", id="acc-label", classes="spark-label")
            yield Sparkline((), id="acc-spark", summary_function=fmean)
        yield Static(_LEGEND, id="chart-legend")
        with Horizontal(id="charts"):
            yield HistoryChart("loss", "loss", id="loss-chart")
            yield HistoryChart("acc", "accuracy %", id="acc-chart")

    def show(self, state: RunState) -> None:
        losses, accs = state.step_losses, state.step_accs
        loss_spark = self.query_one("#loss-spark", Sparkline)
        if loss_spark.data != losses:
            acc_spark = self.query_one("#acc-spark", Sparkline)
            loss_spark.data, acc_spark.data = losses, accs
            loss_spark.display = acc_spark.display = bool(losses)
            self.query_one("#loss-label", Static).update(_label("step loss", losses[-1] if losses else None, "{:.4f}"))
            self.query_one("#acc-label", Static).update(_label("step acc", accs[-1] if accs else None, "{:.2f}%"))
        for chart in self.query(HistoryChart):
            chart.show(state)


_LEGEND = Text.assemble(("per epoch: ", "grey70"), ("━ train", "cyan"), "  ", ("━ validation", "orange1"), "  ",
                        ("● best epoch", "green"))


def _label(name: str, value: float | None, pattern: str) -> Text:
    text = Text(f"{name} ", style="grey70")
    text.append("--" if value is None else pattern.format(value), style="bold")
    return text
