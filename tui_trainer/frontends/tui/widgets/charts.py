"""Per-epoch charts drawn with plotext: the seed's plot_training_history, in the terminal.

A chart is rebuilt only when its data or size changed; long histories are thinned to about
two points per column, always keeping the last and the best epoch, so a run of 10,000 epochs
costs the same to draw as one of 100.
"""

from __future__ import annotations

import math
from typing import Sequence

from textual_plotext import PlotextPlot

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
    """Whole-epoch ticks, few enough to stay readable."""
    span = max(1, last - first)
    wanted = max(2, min(8, width // 8))
    step = max(1, math.ceil(span / wanted))
    ticks = list(range(first, last + 1, step))
    plt.xticks(ticks, [str(t) for t in ticks])


class CachedPlot(StatePanel, PlotextPlot):
    """A plotext widget that builds its figure once per change of data, size or theme.

    PlotextPlot rebuilds (and re-parses) the whole figure on every render, and Textual renders
    a widget again whenever anything else on the screen needs a layout pass."""

    _data_version = 0
    _cache_key: tuple | None = None
    _cache = None
    _drawn_t: float | None = None
    MIN_INTERVAL = 2.0  # seconds of run time between redraws while the run is live

    def due(self, state: RunState, key: tuple) -> bool:
        """Like `remember`, but while the run is live a chart redraws at most once per
        MIN_INTERVAL (measured on the events' clock, so replays stay deterministic); short
        epochs would otherwise redraw it several times a second."""
        self._state = state
        if key == self._key:
            return False
        if (state.active and self._drawn_t is not None and state.last_t is not None
                and state.last_t - self._drawn_t < self.MIN_INTERVAL and self._key is not None):
            return False
        self._key = key
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
            epoch_ticks(plt, epochs[0], max(epochs[-1], epochs[0] + 1), self.size.width)
        else:
            plt.scatter([0], [0], marker=" ")
            plt.xlim(0, max(1, state.num_epochs))
        self.replot()
