"""Per-epoch charts drawn with plotext: the seed's plot_training_history, in the terminal.

A chart is rebuilt only when its data or size changed; long histories are thinned to about
two points per column, always keeping the last and the best epoch, so a run of 10,000 epochs
costs the same to draw as one of 100.
"""

from __future__ import annotations

import math
from typing import Sequence

from textual_plotext import PlotextPlot

from .... import fmt
from ....state import RunState
from .base import StatePanel


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


def epoch_ticks(plt, first: int, last: int, width: int) -> None:
    """Whole-epoch ticks over [first, last], few enough to stay readable; the axis spans
    exactly that range, so plotext never adds ticks of its own (7.5, 1.25)."""
    span = max(1, last - first)
    wanted = max(2, min(8, width // 8))
    step = max(1, math.ceil(span / wanted))
    ticks = list(range(first, last + 1, step))
    plt.xlim(first, first + span)
    plt.xticks(ticks, [str(t) for t in ticks])


def row_ticks(lo: float, hi: float, rows: int, label, most: int = 6) -> tuple[list[float], list[str]]:
    """Y ticks that sit exactly on a row (plotext puts `lo` on the bottom row and `hi` on the
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


class CachedPlot(StatePanel, PlotextPlot):
    """A plotext widget that builds its figure once per change of data, size or theme.

    PlotextPlot rebuilds (and re-parses) the whole figure on every render, and Textual renders
    a widget again whenever anything else on the screen needs a layout pass."""

    _data_version = 0
    _cache_key: tuple | None = None
    _cache = None
    _drawn_t: float | None = None
    _data_key: tuple | None = None
    # Seconds of run time between redraws while the run is live. New data (an epoch's end)
    # redraws at once unless the last redraw is more recent than MIN_INTERVAL: epochs shorter
    # than that (digits: 0.3 s) are drawn once a second, as a redraw costs ~15 ms of the UI
    # thread, which the training shares (benchmarks/console.py overhead). A marker that only
    # crawls redraws every CRAWL_INTERVAL; a key's change (urgent_key) at once.
    MIN_INTERVAL = 1.0
    CRAWL_INTERVAL = 5.0

    def due(self, state: RunState, data_key: tuple, crawl_key: tuple = (), urgent_key: tuple = ()) -> bool:
        """Like `remember`, with the throttle above (measured on the events' clock, so replays
        stay deterministic). A change of `urgent_key` (rare: a key the user pressed) redraws at
        once."""
        self._state = state
        key = (data_key, crawl_key, urgent_key)
        if key == self._key:
            return False
        interval = self.MIN_INTERVAL if data_key != self._data_key else self.CRAWL_INTERVAL
        urgent = self._key is not None and urgent_key != self._key[2]
        if (not urgent and state.active and self._drawn_t is not None and state.last_t is not None
                and self._key is not None and state.last_t - self._drawn_t < interval):
            return False  # a later poll draws it: a live run's state changes every poll
        self._key, self._data_key = key, data_key
        self._drawn_t = state.last_t
        return True

    def replot(self) -> None:
        """Call after drawing new data through `plt`."""
        self._data_version += 1
        self.refresh()

    def render(self):
        key = (self._data_version, self.size, self.app.theme, self.theme)
        if key != self._cache_key:
            self._cache = super().render()
            self._cache_key = key
        return self._cache


class HistoryChart(CachedPlot):
    """Train and validation curves of one metric per epoch, with the best epoch marked."""

    DEFAULT_CSS = """
    HistoryChart { height: 1fr; min-height: 5; }
    """

    def __init__(self, metric: str, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.metric = metric  # "loss" or "acc"
        self.title = title

    def show(self, state: RunState) -> None:
        train = state.train_loss if self.metric == "loss" else state.train_acc
        val = state.val_loss if self.metric == "loss" else state.val_acc
        key = (len(train), state.best_epoch, self.size.width, self.size.height, state.num_epochs)
        if not self.due(state, key):
            return
        plt = self.plt
        plt.clear_figure()
        plt.title(self.title)
        epochs = list(state.epochs_done)
        max_points = max(10, 2 * max(10, self.size.width - 10))
        if epochs:
            best = (state.best_epoch,) if state.best_epoch else ()
            x, y = thin(epochs, train, max_points, best)
            plt.plot(x, y, color="cyan", marker="braille")
            x, y = thin(epochs, val, max_points, best)
            plt.plot(x, y, color="orange", marker="braille")
            if state.best_epoch in epochs:
                i = epochs.index(state.best_epoch)
                plt.vertical_line(state.best_epoch, color="green")
                plt.scatter([state.best_epoch], [val[i]], marker="●", color="green")
            lo, hi = self.value_range([*train, *val])
            plt.ylim(lo, hi)
            plt.yticks(*row_ticks(lo, hi, self.plot_rows, axis_label(hi - lo)))
            epoch_ticks(plt, epochs[0], max(epochs[-1], epochs[0] + 1), self.size.width)
        else:
            # Nothing to plot yet: an axis of the right kind (0-100 for accuracy, no made-up
            # loss values) over the planned epochs, rather than plotext's default -1..1.
            plt.scatter([1], [0], marker=" ")
            if self.metric == "acc":
                plt.ylim(0, 100)
                plt.yticks([0, 50, 100], ["0", "50", "100"])
            else:
                plt.ylim(0, 1)
                plt.yticks([], [])
            if state.num_epochs:
                epoch_ticks(plt, 1, max(2, state.num_epochs), self.size.width)
            else:  # before the run has started: no epochs to label yet
                plt.xticks([], [])
        self.replot()

    @property
    def plot_rows(self) -> int:
        """Rows of plot: the widget less its title, the two frame lines and the tick labels."""
        return max(1, self.size.height - 4)

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
