"""The console of `tui-trainer lr-find`: the sweep drawn as it runs, then a cursor over the
curve. Enter ends the app with the LR under the cursor (the command then starts the training
run with it); q ends it with None.

The sweep runs on a worker thread (`job(progress, should_stop)` returns the engine's RangeTest);
the app polls what it reported four times a second, so the curve costs the sweep no UI time
per step. A finished sweep can be given instead (`result=`): the snapshot tests do that.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from .widgets.lr_finder import LrFinderChart, SweepView, legend, status

POLL_INTERVAL = 0.25


class LrFindApp(App):
    TITLE = "tui-trainer lr-find"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { layout: vertical; }
    #lr-find-title { height: 1; background: $panel; text-style: bold; padding: 0 1; }
    #lr-find-legend { height: auto; padding: 0 1; }
    #lr-find-status { height: 1; padding: 0 1; }
    LrFinderChart { padding: 0 1; }
    """
    BINDINGS = [
        Binding("left", "move(-1)", "LR down", key_display="←"),
        Binding("right", "move(1)", "LR up", key_display="→"),
        Binding("shift+left", "move(-10)", "10 steps", show=False),
        Binding("shift+right", "move(10)", "10 steps", show=False),
        Binding("v", "jump('valley')", "valley"),
        Binding("s", "jump('steepest')", "steepest"),
        Binding("enter", "train", "train with this LR"),
        Binding("q", "leave", "quit"),
        Binding("ctrl+c", "leave", "quit", show=False, priority=True),
    ]

    def __init__(self, *, job: Callable | None = None, result=None, title: str = "LR range test",
                 lr_min: float = 1e-7, lr_max: float = 10.0, steps: int = 100) -> None:
        super().__init__()
        self.job = job
        self.result = result
        self.failure: BaseException | None = None
        self.heading = title
        self._stop = threading.Event()
        self._points: list[tuple[float, float, float]] = []  # (lr, loss, smoothed), appended by the sweep
        self.view = SweepView.of(result) if result is not None else SweepView(lr_min, lr_max, steps)

    def compose(self) -> ComposeResult:
        yield Static(self.heading, id="lr-find-title")
        yield Static(id="lr-find-legend")
        yield LrFinderChart(id="lr-find-chart")
        yield Static(id="lr-find-status")
        yield Footer()

    def on_mount(self) -> None:
        self._draw()
        if self.job is not None and self.result is None:
            self.run_worker(self._sweep, thread=True, exit_on_error=False)
            self.set_interval(POLL_INTERVAL, self._poll)

    # ----- the sweep, on its thread
    def _sweep(self) -> None:
        try:
            result = self.job(self._progress, self._stop.is_set)
        except BaseException as exc:  # noqa: BLE001 - handed to the command, which reports it
            self.failure = exc
            self.call_from_thread(self.exit, None)
            return
        self.call_from_thread(self._finished, result)

    def _progress(self, step: int, lr: float, loss: float, smoothed: float) -> None:
        self._points.append((lr, loss, smoothed))  # list.append is atomic: no lock

    def _poll(self) -> None:
        if self.view.done:
            return
        points = list(self._points)
        if len(points) != len(self.view.lrs):
            self.view = SweepView(self.view.lr_min, self.view.lr_max, self.view.steps,
                                  tuple(p[0] for p in points), tuple(p[2] for p in points))
            self._draw(tuple(p[1] for p in points))

    def _finished(self, result) -> None:
        self.result = result
        if self._stop.is_set():
            self.exit(None)
            return
        self.view = SweepView.of(result)
        self._draw()

    # ----- drawing and keys
    def _draw(self, losses: tuple[float, ...] = ()) -> None:
        self.query_one(LrFinderChart).show(self.view)
        styles = self._styles()
        self.query_one("#lr-find-legend", Static).update(legend(self.view, styles))
        self.query_one("#lr-find-status", Static).update(status(self.view, losses, styles))

    def _styles(self):
        """The colours of the chart's roles in the theme now in use, for the legend and the status line."""
        return vars(self.query_one(LrFinderChart).palette)

    def _set_cursor(self, index: int | None) -> None:
        if index is None or not self.view.done or not self.view.lrs:
            return
        index = max(0, min(len(self.view.lrs) - 1, index))
        if index != self.view.cursor:
            self.view = dataclasses.replace(self.view, cursor=index)
            self._draw()

    def action_move(self, by: int) -> None:
        if self.view.cursor is not None:
            self._set_cursor(self.view.cursor + by)

    def action_jump(self, which: str) -> None:
        self._set_cursor(self.view.valley if which == "valley" else self.view.steepest)

    def action_train(self) -> None:
        if self.view.done and self.view.cursor is not None:
            self.exit(self.view.lrs[self.view.cursor])

    def action_leave(self) -> None:
        self._stop.set()  # a sweep under way ends at its next step
        if self.view.done or self.job is None:
            self.exit(None)
