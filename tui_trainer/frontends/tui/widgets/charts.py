"""Per-epoch charts: the seed's plot_training_history, in the terminal.

A chart is drawn (plot.py) when its data, size or theme changed, at once: an epoch's end shows
as soon as the console polls. Long histories are thinned to about two points per column,
always keeping the last and the best epoch, so a run of 10,000 epochs costs the same to draw
as one of 100.
"""

from __future__ import annotations

import math
from typing import Sequence

from textual.strip import Strip
from textual.widget import Widget

from .... import fmt
from ....state import RunState
from .base import Panel
from .plot import Figure, plot_rows, render


def thin(xs: Sequence[float], ys: Sequence[float], max_points: int, keep: Sequence[float] = ()) -> tuple[list, list]:
    """At most ~max_points evenly spaced points, plus the last and any x in `keep`."""
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    stride = n / max_points
    idx = {int(i * stride) for i in range(max_points)} | {n - 1}
    if keep:
        keep_set = set(keep)
        idx |= {i for i, x in enumerate(xs) if x in keep_set}
    order = sorted(idx)
    return [xs[i] for i in order], [ys[i] for i in order]


def epoch_ticks(first: int, last: int, width: int) -> tuple[tuple[float, float], list[tuple[float, str]]]:
    """Whole-epoch ticks over [first, last], few enough to stay readable, and the x range:
    exactly that span, so no tick falls between two epochs (7.5, 1.25)."""
    span = max(1, last - first)
    wanted = max(2, min(8, width // 8))
    step = max(1, math.ceil(span / wanted))
    return (first, first + span), [(t, str(t)) for t in range(first, last + 1, step)]


def row_ticks(lo: float, hi: float, rows: int, label, most: int = 6) -> tuple[list[float], list[str]]:
    """Y ticks that sit exactly on a row (the chart puts `lo` on the bottom row and `hi` on the
    top one; a tick between two rows is drawn half a row away from its value, and two ticks on
    the same row hide one): the bottom and top rows, and evenly spaced rows between them."""
    if rows < 2 or hi <= lo:
        return [lo], [label(lo)]
    every = max(1, math.ceil((rows - 1) / (most - 1)))
    # evenly spaced when a spacing up to twice the smallest divides the rows; else the top gap
    # is the odd one
    every = next((e for e in range(every, 2 * every + 1) if (rows - 1) % e == 0 and e < rows - 1), every)
    picked = [r for r in range(0, rows - 1, every) if rows - 1 - r >= every] + [rows - 1]
    ticks = [lo + (hi - lo) * r / (rows - 1) for r in picked]
    return ticks, [label(t) for t in ticks]


def axis_label(span: float):
    """A formatter for axis values over `span`: as many decimals as the span needs (0.95 for a
    loss, 72.6 for an accuracy), engineering notation for the very large or small."""
    decimals = 0 if span >= 20 else 1 if span >= 2 else 2 if span >= 0.05 else 3

    def label(value: float) -> str:
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 10 ** -decimals):
            return fmt.engineering(value)
        return f"{value:.{decimals}f}"
    return label


class Chart(Panel, Widget):
    """A panel drawn as a Figure: `figure(state)` says what to draw; the rows are built once
    per change and painted from that cache."""

    DEFAULT_CSS = """
    Chart { width: 1fr; height: 1fr; background: $surface; }
    """
    _strips: list[Strip] = []

    def figure(self, state: RunState) -> Figure:
        raise NotImplementedError

    @property
    def shown_on_screen(self) -> bool:
        # not before layout has given it a size: it is drawn on the resize that follows
        return bool(self.size.area) and super().shown_on_screen

    def draw(self, state: RunState) -> None:
        width, height = self.size
        self._strips = render(self.figure(state), width, height, vars(self.palette), self.rich_style)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width, self.rich_style)


# the roles the curves are drawn in (MetricsPanel's legend names them)
TRAIN_ROLE, VALIDATION_ROLE, BEST_ROLE = "primary", "accent", "good"


class HistoryChart(Chart):
    """Train and validation curves of one metric per epoch, with the best epoch marked."""

    DEFAULT_CSS = """
    HistoryChart { height: 1fr; min-height: 5; }
    """

    def __init__(self, metric: str, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.metric = metric  # "loss" or "acc"
        self.title = title

    def series(self, state: RunState) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.metric == "loss":
            return state.train_loss, state.val_loss
        return state.train_acc, state.val_acc

    def key(self, state: RunState):
        return (*self.series(state), state.best_epoch, state.num_epochs, self.size)

    def figure(self, state: RunState) -> Figure:
        train, val = self.series(state)
        fig = Figure(title=self.title)
        width = self.size.width
        rows = plot_rows(self.size.height, True, True)
        epochs = list(state.epochs_done)
        if epochs:
            max_points = max(10, 2 * max(10, width - 10))
            best = (state.best_epoch,) if state.best_epoch else ()
            fig.lines.append((*thin(epochs, train, max_points, best), TRAIN_ROLE))
            fig.lines.append((*thin(epochs, val, max_points, best), VALIDATION_ROLE))
            if state.best_epoch in epochs:
                i = epochs.index(state.best_epoch)
                fig.vlines.append((state.best_epoch, BEST_ROLE))
                fig.points.append((state.best_epoch, val[i], "●", BEST_ROLE))
            lo, hi = self.value_range([*train, *val])
            fig.ylim = (lo, hi)
            fig.yticks = list(zip(*row_ticks(lo, hi, rows, axis_label(hi - lo))))
            fig.xlim, fig.xticks = epoch_ticks(epochs[0], max(epochs[-1], epochs[0] + 1), width)
        else:
            # Nothing to plot yet: an axis of the right kind (0-100 for accuracy, no made-up
            # loss values) over the planned epochs.
            if self.metric == "acc":
                fig.ylim, fig.yticks = (0, 100), [(0, "0"), (50, "50"), (100, "100")]
            if state.num_epochs:  # none before the run has started: no epochs to label yet
                fig.xlim, fig.xticks = epoch_ticks(1, max(2, state.num_epochs), width)
        return fig

    def value_range(self, values: list[float]) -> tuple[float, float]:
        """The y range of the finite values; accuracy stays within 0..100."""
        finite = [v for v in values if math.isfinite(v)] or [0.0]
        lo, hi = min(finite), max(finite)
        pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 1e-3)
        lo, hi = lo - pad, hi + pad
        if self.metric == "acc":
            lo, hi = max(0.0, lo), min(100.0, hi)
        elif min(finite) >= 0:
            # a loss near zero: start the axis at 0 rather than at a label like 5.23e-3
            lo = 0.0 if lo < 0.1 * hi else lo
        return lo, hi
