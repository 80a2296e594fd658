"""The LR range test's curve: the smoothed loss against the LR on a log axis, with the steepest
descent, the valley and a cursor marked. A function of a `SweepView`, drawn with the console's
chart code (charts.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text

from .... import fmt
from .charts import CachedPlot, axis_label, row_ticks

STEEPEST_COLOUR, VALLEY_COLOUR, CURSOR_COLOUR = "green", "magenta", (255, 200, 0)
STEEPEST_STYLE, VALLEY_STYLE, CURSOR_STYLE = "green", "magenta", "yellow"


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


class LrFinderChart(CachedPlot):
    DEFAULT_CSS = """
    LrFinderChart { height: 1fr; min-height: 8; }
    """

    def show(self, view: SweepView) -> None:
        if not self.remember(view, (view, self.size.width, self.size.height)):
            return
        plt = self.plt
        plt.clear_figure()
        ticks, labels = decade_ticks(view.lr_min, view.lr_max, self.size.width)
        plt.xlim(ticks[0], ticks[-1])
        plt.xticks(ticks, labels)
        plt.xlabel("learning rate")
        finite = [(math.log10(lr), s) for lr, s in zip(view.lrs, view.smoothed) if math.isfinite(s)]
        if not finite:
            plt.scatter([ticks[0]], [0], marker=" ")
            plt.yticks([], [])
            self.replot()
            return
        xs, ys = zip(*finite)
        lo, hi = min(ys), max(ys)
        pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 1e-3)
        lo, hi = lo - pad, hi + pad
        plt.plot(list(xs), list(ys), color="cyan", marker="braille")
        for index, colour in ((view.steepest, STEEPEST_COLOUR), (view.valley, VALLEY_COLOUR),
                              (view.cursor, CURSOR_COLOUR)):  # the cursor last: on top
            if index is not None and index < len(view.lrs):
                x = math.log10(view.lrs[index])
                plt.vertical_line(x, color=colour)
                plt.scatter([x], [view.smoothed[index]], marker="●", color=colour)
        plt.ylim(lo, hi)
        plt.yticks(*row_ticks(lo, hi, max(1, self.size.height - 3), axis_label(hi - lo)))
        self.replot()


def legend(view: SweepView) -> Text:
    """The marks, with their LRs (the suggested one says so)."""
    text = Text("━ smoothed loss", style="cyan")
    suggested = view.valley if view.valley is not None else view.steepest
    for name, index, style in (("steepest descent", view.steepest, STEEPEST_STYLE),
                               ("valley", view.valley, VALLEY_STYLE), ("cursor", view.cursor, CURSOR_STYLE)):
        if index is None or index >= len(view.lrs):
            continue
        note = " (suggested)" if name != "cursor" and index == suggested else ""
        text.append(f"   │ {name} {fmt.lr(view.lrs[index])}{note}", style=style)
    return text


def status(view: SweepView, losses: tuple[float, ...] = ()) -> Text:
    """Where the sweep is, or what the cursor points at and what the keys do."""
    n = len(view.lrs)
    if not view.done:
        if not n:
            return Text("preparing: loading data and building the model ...", style="grey70")
        loss = f", loss {fmt.metric(losses[-1])}" if losses else ""
        return Text(f"sweeping: step {n} of {view.steps}, lr {fmt.lr(view.lrs[-1])}{loss} (smoothed "
                    f"{fmt.metric(view.smoothed[-1])})", style="grey70")
    if view.cursor is None:
        return Text(f"the sweep stopped after {n} step(s): too few to suggest an LR; q quits", style="red")
    i = view.cursor
    text = Text("cursor ", style="grey70")
    text.append(fmt.lr(view.lrs[i]), style="bold yellow")
    text.append(f" (step {i + 1} of {n}), smoothed loss {fmt.metric(view.smoothed[i])}", style="grey70")
    return text
