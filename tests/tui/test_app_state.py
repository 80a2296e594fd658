"""The console's behaviour on scripted states: which keys are available, view switching."""

import pytest

from tui_trainer.frontends.tui.scenes_app import scene_app
from tui_trainer.frontends.tui.widgets.dialogs import QuitScreen

from .screen import screen_lines


async def test_control_keys_available_while_running_and_dimmed_after():
    app = scene_app("running")
    async with app.run_test(size=(120, 36)):
        assert app.check_action("pause", ()) is True
        assert app.check_action("stop", ()) is True
        assert app.check_action("toggle_view", ()) is None  # no report yet: shown dimmed
    app = scene_app("early-stopped")
    async with app.run_test(size=(120, 36)):
        assert app.check_action("pause", ()) is None
        assert app.check_action("lr_up", ()) is None
        # on the report, d goes back to the dashboard, and the footer says so
        assert app.check_action("show_dashboard", ()) is True
        assert app.check_action("toggle_view", ()) is False


async def test_replay_without_control_hides_control_keys():
    app = scene_app("early-stopped", with_control=False)
    async with app.run_test(size=(120, 36)):
        assert app.check_action("pause", ()) is False
        assert app.check_action("stop", ()) is False


async def test_keys_reach_the_control():
    app = scene_app("running")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("p")
        assert app.control.paused
        await pilot.press("space")
        assert not app.control.paused
        await pilot.press("plus", "plus", "minus")
        assert app.control.take().lr_factor == pytest.approx(2.0)
        await pilot.press("c")
        assert app.control.take().checkpoint
        await pilot.press("s")
        assert app.control.stop_reason == "user"


async def test_quit_while_running_asks_and_cancel_keeps_training():
    app = scene_app("running")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("n")
        assert not isinstance(app.screen, QuitScreen)
        assert app.control.stop_reason is None


async def test_report_view_opens_when_the_run_ends():
    app = scene_app("early-stopped")
    async with app.run_test(size=(120, 36)) as pilot:
        switcher = app.query_one("ContentSwitcher")
        assert switcher.current == "report"
        await pilot.pause()
        assert "d Dashboard" in screen_lines(app)[-1]
        await pilot.press("d")
        assert switcher.current == "dashboard"
        await pilot.pause()
        assert "d Report" in screen_lines(app)[-1]
        await pilot.press("d")
        assert switcher.current == "report"
