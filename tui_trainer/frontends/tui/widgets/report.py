"""The final report: the confusion matrix with heat-shaded cells and class names (the seed's
plot_confusion_matrix), per-class precision/recall/F1 and the totals (evaluate_classification)."""

from __future__ import annotations

import functools

from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.color import BLACK, WHITE, Color
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from .... import events as ev
from .... import fmt
from ....describe import describe
from ....state import RunState
from .base import TextPanel
from .charts import HistoryChart
from .contrast import MIN_CONTRAST, contrast, readable, shown, worst_contrast

BOLD = Style(bold=True)


# Cell colours: the further a cell's shade stands from the panel's background (lighter on a dark
# theme, darker on a light one), the larger the share of its true class it holds: the theme's
# success colour on the diagonal, its error colour off it (a neutral shade for a few
# confusions); zeros stay plain text. Every shade has black or white text with a contrast of at
# least 4.5:1 (WCAG AA) in truecolor and after the downgrades to 256 and 16 colours
# (contrast.py; checked for every theme the console offers in tests/tui/test_report_colours.py).
DIAGONAL_STRENGTHS = (0.3, 1.0)  # the range of the success colour blended into the background
CONFUSION_STRENGTHS = (0.45, 1.0)
NEUTRAL_STRENGTH = 0.25  # of the text colour: the first step off the diagonal
CONFUSION_STEPS = (0.05, 0.10, 0.20)  # shares of the true class where the red deepens
SAMPLES = 33


def _cell(text: Color, cell: Color) -> Style:
    return Style(color=text.rich_color, bgcolor=cell.rich_color, bold=True)


def shades(base: Color, background: Color, count: int, strengths: tuple[float, float]) -> list[Style]:
    """`count` readable shades of `base` over `background`, each standing further from the
    background than the one before, spread evenly between the nearest and the furthest."""
    options = []
    lo, hi = strengths
    for i in range(SAMPLES):
        text, cell = readable(background.blend(base, lo + (hi - lo) * i / (SAMPLES - 1)))
        options.append((contrast(shown(cell.rich_color, "truecolor"), shown(background.rich_color, "truecolor")),
                        text, cell))
    options.sort(key=lambda option: option[0])
    near, far = options[0][0], options[-1][0]
    picked: list[tuple] = []
    for k in range(count):
        target = near + (far - near) * k / (count - 1)
        further = [o for o in options if not picked or o[0] > picked[-1][0]] or options[-1:]
        picked.append(min(further, key=lambda o: abs(o[0] - target)))
    return [_cell(text, cell) for _, text, cell in picked]


class HeatScale:
    """The styles of the matrix's cells in one theme."""

    def __init__(self, success: Color, error: Color, foreground: Color, background: Color, zero: Style) -> None:
        self.diagonal, self.confusion, self.zero = _scale(success, error, foreground, background, zero)

    def shade(self, value: int, row_total: int, diagonal: bool) -> Style:
        """The cell's style by the share of its true class (row) it holds."""
        if value == 0:
            return self.zero
        share = value / row_total if row_total else 0.0
        if diagonal:
            return self.diagonal[min(3, int(share * 4))]
        return self.confusion[sum(share >= step for step in CONFUSION_STEPS)]


@functools.lru_cache(maxsize=32)
def _scale(success: Color, error: Color, foreground: Color, background: Color, zero: Style):
    diagonal = shades(success, background, 4, DIAGONAL_STRENGTHS)
    neutral = _cell(*readable(background.blend(foreground, NEUTRAL_STRENGTH)))
    confusion = [neutral] + shades(error, background, 3, CONFUSION_STRENGTHS)
    # zeros: muted if that reads on the panel, else the text colour, else black or white (a
    # theme whose background turns grey in 16 colours)
    candidates = [zero.color] + [c.rich_color for c in (foreground, WHITE, BLACK)]
    readable_zero = next((c for c in candidates if worst_contrast(c, background.rich_color) >= MIN_CONTRAST),
                         max(candidates, key=lambda c: worst_contrast(c, background.rich_color)))
    return diagonal, confusion, zero if readable_zero is zero.color else Style(color=readable_zero)


def confusion_table(report: ev.EvaluationReport, heat: HeatScale, palette, name_width: int = 6) -> Table:
    """Columns are headed by class names when they are short, else by class index (the rows
    then carry both, so a long name is never cut into an ambiguous stub)."""
    names = list(report.class_names)
    short = all(len(n) <= name_width for n in names)
    heads = names if short else [str(i) for i in range(len(names))]
    rows = names if short else [f"{i} {n}" for i, n in enumerate(names)]
    table = Table(title="confusion matrix", caption="rows: true · columns: predicted",
                  caption_style=palette.muted, caption_justify="left", title_style="bold",
                  title_justify="left", box=None, padding=(0, 0), show_edge=False, pad_edge=False)
    table.add_column("", style="bold", no_wrap=True)
    width = max([len(h) for h in heads] + [len(str(v)) for row in report.confusion_matrix for v in row]) + 1
    for head in heads:
        table.add_column(head, justify="right", min_width=width, no_wrap=True)
    for i, (label, row) in enumerate(zip(rows, report.confusion_matrix)):
        total = sum(row)
        cells = [Text(f"{v} ", style=heat.shade(v, total, i == j)) for j, v in enumerate(row)]
        table.add_row(label + " ", *cells)
    return table


def class_table(report: ev.EvaluationReport, palette) -> Table:
    table = Table(title="per class", title_style="bold", title_justify="left", box=None, padding=(0, 1),
                  show_edge=False)
    table.add_column("class", style="bold", no_wrap=True)
    for col in ("precision", "recall", "F1", "support"):
        table.add_column(col, justify="right")
    for i, name in enumerate(report.class_names):
        f1 = report.per_class_f1[i]
        style = palette.good if f1 >= 0.9 else palette.warning if f1 >= 0.7 else palette.error
        table.add_row(name, f"{report.per_class_precision[i]:.3f}", f"{report.per_class_recall[i]:.3f}",
                      Text(f"{f1:.3f}", style=style), str(report.support[i]))
    table.add_section()
    table.add_row("weighted", f"{report.precision:.3f}", f"{report.recall:.3f}", f"{report.f1:.3f}",
                  str(sum(report.support)))
    table.add_row("macro", f"{report.macro_precision:.3f}", f"{report.macro_recall:.3f}", f"{report.macro_f1:.3f}",
                  "")
    return table


def summary_text(state: RunState, palette) -> Text:
    """The scores, then how the run ended in the sentence the log ends with (describe.py)."""
    r = state.report
    text = Text()
    text.append("Final report", style="bold")
    if r is not None:
        text.append("  ·  accuracy ")
        text.append(f"{r.accuracy * 100:.2f}%", style=palette.good + BOLD)
        text.append("  ·  weighted F1 ")
        text.append(f"{r.f1:.4f}", style="bold")
        text.append(f"  ·  best model from epoch {r.best_epoch}, {r.split} set ({sum(r.support):,} samples), "
                    f"loss {fmt.metric(r.loss)}")
    if state.end is not None:
        text.append(f"\n{describe(state.end).text}", style=palette.primary + BOLD)
    if state.info and state.info.run_dir:
        text.append(f"\nrun directory {state.info.run_dir}", style=palette.muted)
    text.append("\npress d for the dashboard, q to quit", style=palette.muted)
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

    def compose(self) -> ComposeResult:
        yield ReportSummary(id="report-summary")
        with Horizontal(id="report-tables"):
            yield ConfusionMatrix(id="report-cm")
            yield ClassScores(id="report-classes")
        with Horizontal(id="report-history"):
            yield HistoryChart("loss", "loss per epoch", id="report-loss")
            yield HistoryChart("acc", "accuracy % per epoch", id="report-acc")


class ReportSummary(TextPanel, Static):
    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)

    def key(self, state: RunState):
        return (state.report, state.status, state.end, state.info)

    def draw(self, state: RunState) -> None:
        self.set_content(summary_text(state, self.palette))


class ConfusionMatrix(TextPanel, Static):
    """The matrix, or the error of a run that failed before it had one."""

    COMPONENT_CLASSES = {"heat--diagonal", "heat--confusion"}
    DEFAULT_CSS = """
    .heat--diagonal { color: $success; }
    .heat--confusion { color: $error; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)

    def key(self, state: RunState):
        return (state.report, state.error)

    @property
    def heat(self) -> HeatScale:
        """The cell styles in the theme now in use."""
        _, _, background, color = self.colors
        return HeatScale(self.get_component_styles("heat--diagonal").color,
                         self.get_component_styles("heat--confusion").color,
                         background + color, background, self.palette.muted)

    def draw(self, state: RunState) -> None:
        if state.report is not None:
            self.set_content(confusion_table(state.report, self.heat, self.palette))
        elif state.error:
            self.set_content(Group(Text("error", style=self.palette.error + BOLD), Text(state.error)))


class ClassScores(TextPanel, Static):
    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)

    def key(self, state: RunState):
        return state.report

    def draw(self, state: RunState) -> None:
        if state.report is not None:
            self.set_content(class_table(state.report, self.palette))
