"""The LR finder's console: the curve of a recorded digits sweep (tests/data/digits-lr-find.json,
written by `tui-trainer lr-find digits --threads 1`), the cursor keys and Enter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui_trainer.frontends.tui.lr_find_app import LrFindApp
from tui_trainer.lr_find_run import result_from_record

RECORD = Path(__file__).resolve().parent.parent / "data" / "digits-lr-find.json"
TITLE = "LR range test: digits / simplecnn, 1e-07 to 10 over 100 steps"


def recorded():
    return result_from_record(json.loads(RECORD.read_text()))


def test_lr_finder_view(snap_compare):
    """The curve on a log-x axis, the steepest descent and the valley marked, the cursor two
    steps to the right of the suggestion (the valley)."""
    assert snap_compare(LrFindApp(result=recorded(), title=TITLE), terminal_size=(100, 30), press=["right", "right"])


@pytest.mark.asyncio
async def test_the_cursor_moves_over_the_steps_and_enter_picks_its_lr():
    result = recorded()
    app = LrFindApp(result=result, title=TITLE)
    async with app.run_test(size=(100, 30)) as pilot:
        status = app.query_one("#lr-find-status")
        assert f"cursor {result.lrs[result.valley]:.2e} (step {result.valley + 1} of 89)" in str(status.render())
        await pilot.press("right", "right", "right", "left")
        assert app.view.cursor == result.valley + 2
        await pilot.press("s")
        assert app.view.cursor == result.steepest
        await pilot.press("shift+right")
        assert app.view.cursor == result.steepest + 10
        for _ in range(10):
            await pilot.press("shift+right")
        assert app.view.cursor == len(result.lrs) - 1  # stops at the last step
        await pilot.press("v", "left", "enter")
    assert app.return_value == result.lrs[result.valley - 1]


@pytest.mark.asyncio
async def test_a_live_sweep_is_drawn_as_it_goes_and_q_leaves_without_training():
    import threading

    go_on = threading.Event()

    def job(progress, should_stop):
        for i, (lr, loss, smoothed) in enumerate(zip(result.lrs, result.losses, result.smoothed)):
            progress(i + 1, lr, loss, smoothed)
            if i == 9:
                go_on.wait(5)
        return result

    result = recorded()
    app = LrFindApp(job=job, title=TITLE)
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(40):
            await pilot.pause(0.1)
            if len(app.view.lrs) == 10:
                break
        assert len(app.view.lrs) == 10 and not app.view.done
        assert "sweeping: step 10 of 100" in str(app.query_one("#lr-find-status").render())
        await pilot.press("enter")  # nothing to pick yet
        assert app.is_running
        go_on.set()
        for _ in range(40):
            await pilot.pause(0.1)
            if app.view.done:
                break
        assert app.view.done and app.view.cursor == result.valley
        await pilot.press("q")
    assert app.return_value is None
