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


class HistoryChart(StatePanel, PlotextPlot):
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
        if not self.remember(state, key):
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
        self.refresh()
