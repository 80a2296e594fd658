"""The LR range test's curve: the smoothed loss against the LR on a log axis, with the steepest
descent, the valley and a cursor marked. A function of a `SweepView`, drawn with the console's
chart code (charts.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from rich.text import Text

from .... import fmt
from .charts import Chart, axis_label, row_ticks
from .plot import Figure, plot_rows

# The console's theme roles the marks are drawn in (the valley, the suggestion, in the "good"
# colour; the steepest descent, second, muted)
CURVE, STEEPEST, VALLEY, CURSOR = "primary", "muted", "good", "warning"


@dataclass(frozen=True)
class SweepView:
    """What the view shows: the steps so far, the suggestions (indices), the cursor."""

    lr_min: float
    lr_max: float
    steps: int
    lrs: tuple[float, ...] = ()
    smoothed: tuple[float, ...] = ()
    steepest: int | None = None
    valley: int | None = None
    cursor: int | None = None
    done: bool = False

    @classmethod
    def of(cls, result, cursor: int | None = None) -> "SweepView":
        return cls(result.lr_min, result.lr_max, result.steps, tuple(result.lrs), tuple(result.smoothed),
                   result.steepest, result.valley, result.suggestion if cursor is None else cursor, True)


def decade_ticks(lr_min: float, lr_max: float, width: int) -> tuple[list[int], list[str]]:
    """Whole decades over the sweep's range (every other one when they would crowd)."""
    lo, hi = math.floor(math.log10(lr_min)), math.ceil(math.log10(lr_max))
    step = max(1, math.ceil((hi - lo) / max(2, width // 8)))
    ticks = list(range(lo, hi + 1, step))
    return ticks, [f"1e{t}" if t else "1" for t in ticks]


@dataclass
class SweepFigure:
    """What to draw, independent of the chart code that draws it: the curve, the marks, the
    axes (x is log10 of the LR). Ticks are (value, label) pairs."""

    xlim: tuple[float, float]
    ylim: tuple[float, float] = (0.0, 1.0)
    xticks: list = field(default_factory=list)
    yticks: list = field(default_factory=list)
    lines: list = field(default_factory=list)  # (xs, ys, role)
    points: list = field(default_factory=list)  # (x, y, character, role)
    vlines: list = field(default_factory=list)  # (x, role)


def sweep_figure(view: SweepView, width: int, rows: int) -> SweepFigure:
    """The smoothed loss against log10(lr), the steepest descent, the valley and the cursor
    marked (the cursor last, on top); `rows`: rows of plot area, for the y ticks."""
    ticks, labels = decade_ticks(view.lr_min, view.lr_max, width)
    fig = SweepFigure(xlim=(ticks[0], ticks[-1]), xticks=list(zip(ticks, labels)))
    finite = [(math.log10(lr), s) for lr, s in zip(view.lrs, view.smoothed) if math.isfinite(s)]
    if not finite:
        return fig
    xs, ys = zip(*finite)
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 1e-3)
    fig.ylim = (lo - pad, hi + pad)
    fig.yticks = list(zip(*row_ticks(*fig.ylim, max(1, rows), axis_label(hi - lo))))
    fig.lines.append((list(xs), list(ys), CURVE))
    for index, role in ((view.steepest, STEEPEST), (view.valley, VALLEY), (view.cursor, CURSOR)):
        if index is not None and index < len(view.lrs):
            x = math.log10(view.lrs[index])
            fig.vlines.append((x, role))
            fig.points.append((x, view.smoothed[index], "●", role))
    return fig


class LrFinderChart(Chart):
    """The sweep's curve; `show(view)` draws it when the view or the size changed."""

    DEFAULT_CSS = """
    LrFinderChart { height: 1fr; min-height: 8; }
    """

    def key(self, view: SweepView):
        return (view, self.size)

    def figure(self, view: SweepView) -> Figure:
        return Figure(**vars(sweep_figure(view, self.size.width, plot_rows(self.size.height, False, True))))


def legend(view: SweepView, styles: Mapping) -> Text:
    """The marks, with their LRs (the suggested one says so); styles: role -> style."""
    text = Text("━ smoothed loss", style=styles[CURVE])
    suggested = view.valley if view.valley is not None else view.steepest
    for name, index, role in (("steepest descent", view.steepest, STEEPEST), ("valley", view.valley, VALLEY),
                              ("cursor", view.cursor, CURSOR)):
        if index is None or index >= len(view.lrs):
            continue
        note = " (suggested)" if name != "cursor" and index == suggested else ""
        text.append(f"   │ {name} {fmt.lr(view.lrs[index])}{note}", style=styles[role])
    return text


def status(view: SweepView, losses: tuple[float, ...], styles: Mapping) -> Text:
    """Where the sweep is, or what the cursor points at and what the keys do."""
    n = len(view.lrs)
    if not view.done:
        if not n:
            return Text("preparing: loading data and building the model ...", style=styles["muted"])
        loss = f", loss {fmt.metric(losses[-1])}" if losses else ""
        return Text(f"sweeping: step {n} of {view.steps}, lr {fmt.lr(view.lrs[-1])}{loss} (smoothed "
                    f"{fmt.metric(view.smoothed[-1])})", style=styles["muted"])
    if view.cursor is None:
        return Text(f"the sweep stopped after {n} step(s): too few to suggest an LR; q quits", style=styles["error"])
    i = view.cursor
    text = Text("cursor ", style=styles["muted"])
    text.append(fmt.lr(view.lrs[i]), style=styles[CURSOR])
    text.append(f" (step {i + 1} of {n}), smoothed loss {fmt.metric(view.smoothed[i])}", style=styles["muted"])
    return text
