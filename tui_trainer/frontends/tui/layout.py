"""How the console fits its terminal: the size classes its stylesheet (app.tcss) lays the
dashboard out by, and what a terminal below the minimum shows instead."""

from __future__ import annotations

from ...state import RunState
from ...vocab import Status
from .widgets.report import ReportPanel

MIN_WIDTH, MIN_HEIGHT = 80, 24


def lay_out(screen, width: int, height: int) -> None:
    """Set the dashboard screen's size classes for a terminal of width x height."""
    screen.set_class(width < MIN_WIDTH or height < MIN_HEIGHT, "-too-small")
    screen.set_class(height < 32, "-compact")
    screen.set_class(width < 110 and height >= 32, "-narrow")
    screen.query_one(ReportPanel).set_class(width < 110, "-stacked")


def too_small_text(state: RunState, stale: bool) -> str:
    """What a terminal below the minimum shows: the size it needs and what the run does meanwhile
    (a paused or ended run does not train on)."""
    if stale:
        doing = "the run is not running"
    elif not state.active:
        doing = "the run has ended"
    elif state.run_status is Status.PAUSED:
        doing = "training is paused"
    else:
        doing = "training continues"
    return f"terminal too small\nneeds at least {MIN_WIDTH}x{MIN_HEIGHT}\n{doing}"
