"""The final report: the confusion matrix with heat-shaded cells and class names (the seed's
plot_confusion_matrix), per-class precision/recall/F1 and the totals (evaluate_classification)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from .... import events as ev
from .... import fmt
from ....describe import describe
from ....state import RunState
from .bars import frozen
from .charts import HistoryChart


# Cell colours: (text, background) pairs whose contrast ratio is at least 4.5:1 (WCAG AA) in
# truecolor and after the 256- and 16-colour downgrades terminals like tmux and TERM=screen get
# (tests/tui/test_report_colours.py computes it). A brighter background means a larger share
# of the true class: green on the diagonal, red off it; zeros stay plain text.
DIAGONAL_HEAT = ("#ffffff on #1b5e20", "#000000 on #00af00", "#000000 on #00d700", "#000000 on #5fff5f")
CONFUSION_HEAT = ("#ffffff on #3a3a3a", "#ffffff on #5f0000", "#ffffff on #870000", "#ffffff on #af0000")
CONFUSION_STEPS = (0.05, 0.10, 0.20)  # shares of the true class where the red deepens
ZERO_STYLE = "grey62"


def _shade(value: int, row_total: int, diagonal: bool) -> str:
    """The cell's style by the share of its true class (row) it holds."""
    if value == 0:
        return ZERO_STYLE
    share = value / row_total if row_total else 0.0
    if diagonal:
        return "bold " + DIAGONAL_HEAT[min(3, int(share * 4))]
    return "bold " + CONFUSION_HEAT[sum(share >= step for step in CONFUSION_STEPS)]


def confusion_table(report: ev.EvaluationReport, name_width: int = 6) -> Table:
    """Columns are headed by class names when they are short, else by class index (the rows
    then carry both, so a long name is never cut into an ambiguous stub)."""
    names = list(report.class_names)
    short = all(len(n) <= name_width for n in names)
    heads = names if short else [str(i) for i in range(len(names))]
    rows = names if short else [f"{i} {n}" for i, n in enumerate(names)]
    table = Table(title="confusion matrix", caption="rows: true · columns: predicted",
                  caption_style="grey50", caption_justify="left", title_style="bold",
                  title_justify="left", box=None, padding=(0, 0), show_edge=False, pad_edge=False)
    table.add_column("", style="bold", no_wrap=True)
    width = max([len(h) for h in heads] + [len(str(v)) for row in report.confusion_matrix for v in row]) + 1
    for head in heads:
        table.add_column(head, justify="right", min_width=width, no_wrap=True)
    for i, (label, row) in enumerate(zip(rows, report.confusion_matrix)):
        total = sum(row)
        cells = [Text(f"{v} ", style=_shade(v, total, i == j)) for j, v in enumerate(row)]
        table.add_row(label + " ", *cells)
    return table


def class_table(report: ev.EvaluationReport) -> Table:
    table = Table(title="per class", title_style="bold", title_justify="left", box=None, padding=(0, 1),
                  show_edge=False)
    table.add_column("class", style="bold", no_wrap=True)
    for col in ("precision", "recall", "F1", "support"):
        table.add_column(col, justify="right")
    for i, name in enumerate(report.class_names):
        f1 = report.per_class_f1[i]
        style = "green" if f1 >= 0.9 else "yellow" if f1 >= 0.7 else "red"
        table.add_row(name, f"{report.per_class_precision[i]:.3f}", f"{report.per_class_recall[i]:.3f}",
                      Text(f"{f1:.3f}", style=style), str(report.support[i]))
    table.add_section()
    table.add_row("weighted", f"{report.precision:.3f}", f"{report.recall:.3f}", f"{report.f1:.3f}",
                  str(sum(report.support)))
    table.add_row("macro", f"{report.macro_precision:.3f}", f"{report.macro_recall:.3f}", f"{report.macro_f1:.3f}",
                  "")
    return table


def summary_text(state: RunState) -> Text:
    """The scores, then how the run ended in the sentence the log ends with (describe.py)."""
    r = state.report
    text = Text()
    text.append("Final report", style="bold")
    if r is not None:
        text.append("  ·  accuracy ")
        text.append(f"{r.accuracy * 100:.2f}%", style="bold green")
        text.append("  ·  weighted F1 ")
        text.append(f"{r.f1:.4f}", style="bold")
        text.append(f"  ·  best model from epoch {r.best_epoch}, {r.split} set ({sum(r.support):,} samples), "
                    f"loss {fmt.metric(r.loss)}")
    if state.end is not None:
        text.append(f"\n{describe(state.end).text}", style="bold cyan")
    if state.info and state.info.run_dir:
        text.append(f"\nrun directory {state.info.run_dir}", style="grey70")
    text.append("\npress d for the dashboard, q to quit", style="grey50")
    return text


class ReportPanel(VerticalScroll):
    """Summary, confusion matrix, per-class scores, then the training history charts."""

    DEFAULT_CSS = """
    ReportPanel { height: 1fr; }
    ReportPanel #report-history { height: 1fr; min-height: 8; margin-top: 1; }
    ReportPanel #report-summary { height: auto; margin-bottom: 1; }
    ReportPanel #report-tables { height: auto; }
    ReportPanel #report-cm { width: auto; height: auto; margin-right: 4; }
    ReportPanel #report-classes { width: auto; height: auto; }
    ReportPanel.-stacked #report-tables { layout: vertical; }
    ReportPanel.-stacked #report-cm { margin-bottom: 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="report-summary")
        with Horizontal(id="report-tables"):
            yield Static("", id="report-cm")
            yield Static("", id="report-classes")
        with Horizontal(id="report-history"):
            yield HistoryChart("loss", "loss per epoch", id="report-loss")
            yield HistoryChart("acc", "accuracy % per epoch", id="report-acc")

    _state: RunState | None = None

    def on_show(self) -> None:
        if self._state is not None:
            self._key = None
            self.show(self._state)

    def show(self, state: RunState) -> None:
        self._state = state
        if not self.display:
            return  # hidden behind the dashboard: nothing to draw yet
        for chart in self.query(HistoryChart):
            chart.show(state)
        key = (state.report, state.status, state.end)
        if key == self._key:
            return
        self._key = key
        self.query_one("#report-summary", Static).update(frozen(summary_text(state)))
        if state.report is not None:
            self.query_one("#report-cm", Static).update(confusion_table(state.report))
            self.query_one("#report-classes", Static).update(class_table(state.report))
        elif state.error:
            self.query_one("#report-cm", Static).update(Group(Text("error", style="bold red"),
                                                              Text(state.error)))
