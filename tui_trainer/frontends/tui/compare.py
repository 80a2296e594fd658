"""The console of `tui-trainer compare`: the runs' validation loss and accuracy overlaid, one
colour per run, a legend, and the table of what differs (the text view's, tui_trainer/compare.py).

The charts are drawn by the console's own chart code (widgets/plot.py, with the ticks and
thinning of widgets/charts.py); runs still training are re-read every FOLLOW_INTERVAL seconds.
"""

from __future__ import annotations

import math

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Footer, Static

from ...compare import ComparedRun, differing_keys, summary_table
from .widgets.charts import axis_label, epoch_ticks, row_ticks, thin
from .widgets.plot import Figure, plot_rows, render

FOLLOW_INTERVAL = 2.0
# One colour per run, told apart also by people with a colour-vision deficiency (Okabe-Ito);
# the same RGB in the charts and the table.
PALETTE = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167), (153, 153, 153))


def run_colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def rich_colour(index: int) -> str:
    return "#{:02x}{:02x}{:02x}".format(*run_colour(index))


def run_role(index: int) -> str:
    return f"run{index}"


class CompareChart(Widget):
    """One validation metric of every run, per epoch; each run's best epoch marked with a dot."""

    DEFAULT_CSS = "CompareChart { height: 1fr; min-height: 8; background: $surface; }"
    _strips: list[Strip] = []
    _drawn: object = None

    def __init__(self, metric: str, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.metric, self.title = metric, title
        self._runs: list[ComparedRun] = []

    def show(self, runs: list[ComparedRun]) -> None:
        self._runs = runs
        histories = [run.history(self.metric) for run in runs]
        key = (tuple(len(e) for e, _ in histories), tuple(r.best()[0] for r in runs), self.size)
        if key == self._drawn or not self.size.area:
            return
        self._drawn = key
        width, height = self.size
        styles = {run_role(i): Style(color=rich_colour(i), bold=True) for i in range(len(runs))}
        self._strips = render(self.figure(runs, histories), width, height, styles, self.rich_style)
        self.refresh()

    def on_resize(self, event) -> None:
        self.show(self._runs)

    def figure(self, runs: list[ComparedRun], histories) -> Figure:
        width = self.size.width
        fig = Figure(title=self.title)
        values = [v for _, ys in histories for v in ys if math.isfinite(v)]
        epochs = [e for es, _ in histories for e in es]
        max_points = max(10, 2 * max(10, width - 10))
        for i, (run, (xs, ys)) in enumerate(zip(runs, histories)):
            if xs:
                best = run.best()[0]
                fig.lines.append((*thin(xs, ys, max_points, (best,) if best else ()), run_role(i)))
        for i, (run, (xs, ys)) in enumerate(zip(runs, histories)):  # the dots over every line
            best = run.best()[0]
            if best in xs:
                fig.points.append((best, ys[xs.index(best)], "●", run_role(i)))
        if values:
            lo, hi = min(values), max(values)
            pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 1e-3)
            lo, hi = lo - pad, hi + pad
            if self.metric == "val_acc":
                lo, hi = max(0.0, lo), min(100.0, hi)
            elif min(values) >= 0 and lo < 0.1 * hi:
                lo = 0.0  # as the console's loss chart: a loss near zero starts the axis at 0
            fig.ylim = (lo, hi)
            rows = plot_rows(self.size.height, True, True)
            fig.yticks = list(zip(*row_ticks(lo, hi, max(1, rows), axis_label(hi - lo))))
            fig.xlim, fig.xticks = epoch_ticks(min(epochs), max(max(epochs), min(epochs) + 1), width)
        return fig

    def render_line(self, y: int) -> Strip:
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width, self.rich_style)


class Legend(Static):
    DEFAULT_CSS = "Legend { height: auto; padding: 0 1; }"

    def show(self, runs: list[ComparedRun]) -> None:
        text = Text()
        for i, run in enumerate(runs):
            if i:
                text.append("   ")
            text.append("━━ ", style=f"bold {rich_colour(i)}")
            text.append(f"{run.label} ", style="bold")
            text.append(run.name)
        self.update(text)


class RunsTable(Static):
    DEFAULT_CSS = "RunsTable { height: auto; padding: 0 1; }"

    def show(self, runs: list[ComparedRun]) -> None:
        headers, rows = summary_table(runs)
        keys = len(differing_keys(runs))  # their columns come after the status
        table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
        for i, header in enumerate(headers):
            if i == 1:
                continue  # the legend above names the runs
            table.add_column(header, justify="left" if i < 3 + keys else "right", no_wrap=True,
                             overflow="ellipsis", max_width=24 if 3 <= i < 3 + keys else None)
        for i, row in enumerate(rows):
            table.add_row(Text(row[0], style=f"bold {rich_colour(i)}"), *row[2:])
        self.update(table)


class CompareApp(App[int]):
    TITLE = "tui-trainer compare"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #charts { height: 1fr; }
    #charts CompareChart { width: 1fr; }
    Screen.-narrow #charts { layout: vertical; }
    """
    BINDINGS = [Binding("q", "quit", "Quit"), Binding("r", "reload", "Re-read")]

    def __init__(self, runs: list[ComparedRun], *, follow: bool = True) -> None:
        super().__init__()
        self.runs = runs
        self.follow = follow

    def compose(self) -> ComposeResult:
        with Horizontal(id="charts"):
            yield CompareChart("val_loss", "validation loss", id="loss")
            yield CompareChart("val_acc", "validation accuracy (%)", id="acc")
        yield Legend(id="legend")
        yield RunsTable(id="table")
        yield Footer()

    def on_mount(self) -> None:
        self.redraw()
        if self.follow and any(run.live for run in self.runs):
            self.set_interval(FOLLOW_INTERVAL, self.action_reload)

    def on_resize(self, event) -> None:
        self.screen.set_class(event.size.width < 70, "-narrow")

    def redraw(self) -> None:
        for widget in (self.query_one("#loss", CompareChart), self.query_one("#acc", CompareChart),
                       self.query_one(Legend), self.query_one(RunsTable)):
            widget.show(self.runs)

    def action_reload(self) -> None:
        changed = [run.update() for run in self.runs]
        if any(changed):
            self.redraw()
