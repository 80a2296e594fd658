"""Every panel is a function of the run's state: it draws when what it depends on changed (and
only then, at once), a hidden one when it is shown; and every panel names the same best epoch."""

from __future__ import annotations

import dataclasses
import re

import pytest
from rich.text import Text
from textual.app import App
from textual.widgets import Static

from tui_trainer import events as ev
from tui_trainer.engine.control import Control
from tui_trainer.frontends.tui.app import TrainerApp
from tui_trainer.frontends.tui.scenes import cifar_run
from tui_trainer.frontends.tui.scenes_app import scene_app
from tui_trainer.frontends.tui.store import StateStore
from tui_trainer.frontends.tui.widgets import charts
from tui_trainer.frontends.tui.widgets.base import Panel
from tui_trainer.state import RunState, replay

from .screen import region_text

MEDIUM = (120, 36)


# ----- a panel draws when its key changes -----
class Counting(Panel, Static):
    """A panel that depends on the epoch only."""

    def __init__(self) -> None:
        super().__init__("")
        self.drawn: list[int] = []

    def key(self, state: RunState):
        return state.epoch

    def draw(self, state: RunState) -> None:
        self.drawn.append(state.epoch)
        self.update(Text(f"epoch {state.epoch}", style=self.palette.good))


class One(App):
    def compose(self):
        yield Counting()


async def test_a_panel_draws_only_when_its_key_changes():
    app = One()
    async with app.run_test(size=(40, 5)) as pilot:
        panel = app.query_one(Counting)
        panel.show(RunState(epoch=1, version=1))
        panel.show(RunState(epoch=1, version=2))  # a new state, the same key: not drawn again
        panel.show(RunState(epoch=1, version=3))
        assert panel.drawn == [1]
        panel.show(RunState(epoch=2, version=4))
        assert panel.drawn == [1, 2]
        app.theme = "nord"  # the theme is part of every panel's key
        await pilot.pause()
        panel.show(RunState(epoch=2, version=5))
        assert panel.drawn == [1, 2, 2]
        panel.display = False  # hidden: not drawn, however the state changes ...
        await pilot.pause()
        panel.show(RunState(epoch=3, version=6))
        panel.show(RunState(epoch=4, version=7))
        assert panel.drawn == [1, 2, 2]
        panel.display = True  # ... until it is shown again, with the newest state
        await pilot.pause()
        assert panel.drawn == [1, 2, 2, 4]


async def test_in_the_console_a_step_redraws_no_chart_and_an_epoch_end_redraws_them_at_once(monkeypatch):
    drawn = []
    original = charts.HistoryChart.draw
    monkeypatch.setattr(charts.HistoryChart, "draw", lambda self, state: (drawn.append(self.id), original(self, state)))
    events = cifar_run(3, 60, num_epochs=10)
    app = TrainerApp(StateStore(replay(events)), Control())
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.pause()
        assert sorted(drawn) == ["acc-chart", "loss-chart"]  # the report's charts wait behind the dashboard
        drawn.clear()
        state = app.store.snapshot()
        progress = region_text(app, app.query_one("#progress"))
        last = next(e for e in reversed(events) if isinstance(e, ev.StepProgress))
        for step in (80, 100, 120):  # steps: the progress panel moves, the charts stay
            app.store.emit(dataclasses.replace(last, t=state.last_t + step / 100, step=step, samples=step * 128))
            app.refresh_view()
            await pilot.pause()
        assert "step 120/391" in region_text(app, app.query_one("#progress")) != progress
        assert drawn == []
        end = next(e for e in reversed(events) if isinstance(e, ev.EpochEnd))
        app.store.emit(ev.ValidationStarted(t=state.last_t + 2, epoch=4, steps=20))
        app.store.emit(dataclasses.replace(end, t=state.last_t + 2.1, epoch=4, is_best=False))  # 0.1 s later
        app.refresh_view()
        await pilot.pause()
        assert sorted(drawn) == ["acc-chart", "loss-chart"]
        assert "4" in region_text(app, app.query_one("#loss-chart")).splitlines()[-1]


# ----- every panel names the same best epoch -----
@pytest.mark.parametrize("scene", ["running", "early-stopped", "stopped"])
async def test_every_panel_names_the_same_best_epoch(scene):
    app = scene_app(scene)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        state = app.store.snapshot()
        best = state.best_epoch
        lowest = min(zip(state.val_loss, state.epochs_done))[1]
        assert best == lowest  # by val_loss, the engine's default
        if state.report is not None:
            summary = region_text(app, app.query_one("#report-summary"))
            assert f"best model from epoch {best}," in summary
            for chart in ("#report-loss", "#report-acc"):
                assert [x for x, _ in app.query_one(chart).figure(state).vlines] == [best]
            await pilot.press("d")
            await pilot.pause()
        early = region_text(app, app.query_one("#early"))
        assert re.search(rf"best val_loss [\d.]+ @ epoch {best}\b", early), early
        for chart in ("#loss-chart", "#acc-chart"):
            assert [x for x, _ in app.query_one(chart).figure(state).vlines] == [best]
        news = [line.text for line in state.log if line.text.startswith("new best")]
        assert news[-1].endswith(f"at epoch {best}") and "val_loss" in news[-1]
