"""What the console shows, read off the painted screen as a person would read it: the help,
the footer, the LR plan after a manual change, charts, the events panel, the 80x24 layout and
what happens after `c` or `-` while paused."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tui_trainer import events as ev
from tui_trainer.engine.control import Control
from tui_trainer.frontends.tui.app import TrainerApp
from tui_trainer.frontends.tui.scenes import STEPS, T0, cifar_run
from tui_trainer.frontends.tui.scenes_app import scene_app
from tui_trainer.frontends.tui.store import StateStore
from tui_trainer.frontends.tui.widgets.dialogs import HelpScreen
from tui_trainer.state import replay

from .screen import region_text, screen_lines, screen_text

MEDIUM, SMALL = (120, 36), (80, 24)


def app_for(events, control=True) -> TrainerApp:
    return TrainerApp(StateStore(replay(events)), Control() if control else None)


def footer(app) -> str:
    return screen_lines(app)[-1]


# ----- 1: the help screen -----
async def test_help_lists_the_keys_and_what_they_do_now():
    app = scene_app("running")
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = region_text(app, app.screen.query_one("#help-box"))
        assert shown.count("\n") >= 10  # not an empty frame
        for text in ("pause at the next step boundary", "stop early", "save a resumable last.pth",
                     "double / halve the learning rate", "ctrl+z", "quit"):
            assert text in shown, text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_help_while_paused_and_in_a_replay_says_what_applies():
    app = scene_app("paused")
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        shown = region_text(app, app.screen.query_one("#help-box"))
        assert "resume training" in shown and "save a resumable last.pth now" in shown
    app = scene_app("early-stopped", with_control=False)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("d", "question_mark")
        await pilot.pause()
        shown = region_text(app, app.screen.query_one("#help-box"))
        assert "a read-only view of the run's events" in shown
        assert "switch between the dashboard and the final report" in shown


# ----- 18: the footer says Resume while paused -----
async def test_footer_says_resume_while_paused_and_pause_while_running():
    app = scene_app("paused")
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.pause()
        assert "p Resume" in footer(app) and "Pause" not in footer(app)
    app = scene_app("running")
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.pause()
        assert "p Pause" in footer(app)
        await pilot.press("p")
        await pilot.pause()
        assert app.control.paused
        assert "p Resume" in footer(app)
        await pilot.press("p")
        await pilot.pause()
        assert not app.control.paused and "p Pause" in footer(app)


# ----- 7: the LR plan follows a manual change -----
def test_a_manual_lr_change_scales_the_rest_of_the_plan():
    events = cifar_run(3, 100, num_epochs=20)
    planned = replay(events).lr_plan
    position = 3 + 100 / STEPS
    old = events[-1].lr if isinstance(events[-1], ev.StepProgress) else replay(events).lr
    events.append(ev.LrChanged(t=events[-1].t + 1, epoch=4, step=100, old_lr=old, new_lr=old * 2, reason="manual"))
    state = replay(events)
    before = {x: lr for x, lr in planned}
    assert [p for p in state.lr_plan if p[0] < position] == [p for p in planned if p[0] < position]
    later = [(x, lr) for x, lr in state.lr_plan if x > position]
    assert later and all(lr == pytest.approx(2 * before[x]) for x, lr in later)
    at = [lr for x, lr in state.lr_plan if x == position]
    assert at == [pytest.approx(before[3.0]), pytest.approx(2 * before[3.0])]  # the step the change made


async def test_lr_panel_redraws_the_plan_at_once_after_a_change():
    app = scene_app("running")
    async with app.run_test(size=MEDIUM) as pilot:
        chart = app.query_one("#lr-chart")
        before = region_text(app, chart)
        state = app.store.snapshot()
        app.store.emit(ev.LrChanged(t=state.last_t + 0.1, epoch=state.epoch, step=state.step, old_lr=state.lr,
                                    new_lr=state.lr * 4, reason="manual"))
        app.refresh_view()
        await pilot.pause()
        after = region_text(app, chart)
        assert after != before
        assert "3.86e-03" in app.query_one("#lr-text").render().plain


# ----- 15: charts -----
async def test_empty_charts_show_no_negative_accuracy_and_whole_epochs():
    app = app_for(cifar_run(0, 0, num_epochs=30)[:5])  # the run has started, no epoch done
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.pause()
        for chart_id in ("#loss-chart", "#acc-chart", "#lr-chart"):
            shown = region_text(app, app.query_one(chart_id))
            assert not re.search(r"(?<![e\d])-\d", shown), (chart_id, shown)
            numbers = re.findall(r"(?<![\d.e-])\d+\.\d+(?![\de])", shown.splitlines()[-1])
            assert not numbers, (chart_id, numbers)  # no 7.5, 22.5 on an epoch axis


async def test_the_lr_chart_shows_no_values_before_the_run_knows_its_lr():
    """Preparing: no LR yet, so no axis labels (it drew 0 to 1.00e+00, made up)."""
    app = app_for([ev.Preparing(t=T0, stage="loading data", detail="cifar10")])
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.pause()
        shown = region_text(app, app.query_one("#lr-chart"))
        assert not re.search(r"\d", shown), shown


async def test_epoch_axis_ticks_are_whole_epochs():
    app = app_for(cifar_run(1, 0, num_epochs=5) + cifar_run(0, 0)[:0])
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        for chart_id in ("#loss-chart", "#acc-chart"):
            axis = region_text(app, app.query_one(chart_id)).splitlines()[-1]
            assert axis.split() and all(tick.isdigit() for tick in axis.split()), axis


async def test_an_epoch_end_redraws_the_charts_at_once():
    events = cifar_run(3, 0, num_epochs=10)
    app = app_for(events)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert "4" not in region_text(app, app.query_one("#loss-chart")).splitlines()[-1]
        end = next(e for e in reversed(events) if isinstance(e, ev.EpochEnd))
        t = end.t + 1.1  # a short epoch, ended a second after the last redraw
        app.store.emit(ev.EpochStarted(t=t - 0.5, epoch=4, num_epochs=10, steps=STEPS))
        app.store.emit(dataclasses.replace(end, t=t, epoch=4, is_best=False))
        app.refresh_view()
        await pilot.pause()
        assert "4" in region_text(app, app.query_one("#loss-chart")).splitlines()[-1]


async def test_lr_axis_labels_use_the_panels_format_and_a_tiny_change_stays_tiny():
    events = cifar_run(2, 100, num_epochs=10)
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    flat = ((0.0, 1e-3), (10.0, 1e-3))  # --scheduler none: a flat plan
    events = [dataclasses.replace(e, lr_plan=flat, scheduler="none") if e is started else e for e in events]
    events = [dataclasses.replace(e, lr=1e-3) if isinstance(e, (ev.StepProgress, ev.EpochEnd)) else e
              for e in events]
    events.append(ev.LrChanged(t=events[-1].t + 1, epoch=3, step=100, old_lr=1e-3, new_lr=1.001e-3,
                               reason="manual"))
    app = app_for(events)
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.pause()
        rows = region_text(app, app.query_one("#lr-chart")).splitlines()
        labels = [row.split("┤")[0].strip() for row in rows if "┤" in row]
        assert labels and all(re.fullmatch(r"\d\.\d\de-\d\d|0", label) for label in labels), labels
        # the plan stays in the upper half: a 0.1% change is not blown up to the full height
        drawn = [i for i, row in enumerate(rows) if "┤" in row or "│" in row]
        lower_half = [rows[i] for i in drawn[len(drawn) // 2 + 1:]]
        assert not any(re.search(r"[⠁-⣿]", row.split("┤")[-1].split("│", 1)[-1]) for row in lower_half), rows


# ----- 16: the events panel -----
async def test_events_panel_shows_whole_messages_and_scrolls_back():
    events = cifar_run(2, 50)
    long = ("non-finite loss at epoch 3, step 50; stopping (use --on-nan skip to skip such batches, "
            "or lower --lr) and this sentence ends here: END-OF-MESSAGE")
    t = events[-1].t
    events += [ev.Notice(t=t + i, level="info", message=f"note {i}") for i in range(1, 30)]
    events.append(ev.Notice(t=t + 31, level="error", message=long))
    app = app_for(events)
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.pause()
        panel = app.query_one("#events")
        shown = region_text(app, panel)
        assert "END-OF-MESSAGE" in shown  # wrapped, not cut
        assert "run started" not in shown
        await pilot.press("tab")
        assert app.focused is panel
        await pilot.press("home")
        await pilot.pause()
        assert "run started" in region_text(app, panel)


async def test_a_failed_run_shows_no_eta_done():
    events = cifar_run(2, 50)
    events.append(ev.RunFailed(t=events[-1].t + 1, error="non-finite loss at epoch 3, step 50", epoch=3, step=50))
    app = app_for(events)
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.pause()
        progress = region_text(app, app.query_one("#progress"))
        assert "FAILED" in screen_lines(app)[0]
        assert "ETA done" not in progress and "ETA --" in progress


# ----- 18: 80x24 -----
async def test_80x24_lines_fit_their_panels():
    app = scene_app("running-cpu")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        system = region_text(app, app.query_one("#system")).splitlines()
        ram = [line for line in system if "RAM" in line]
        assert ram and ("GB" in ram[0] or "MB" in ram[0]) or "G" in ram[0]
        assert not any(line.strip() in ("MB", "GB") for line in system), system
        lr = region_text(app, app.query_one("#lr"))
        assert "━ plan" not in lr or "now" in lr  # a legend is whole or absent
        progress = region_text(app, app.query_one("#progress")).splitlines()
        assert "samples/s" in progress[-1] and "ETA" in progress[-1]
        header = screen_lines(app)[0]
        assert "RUNNING" in header and "508,426 params" in header


# ----- 5 (console side): `c` and `-` while paused -----
async def test_save_and_lr_change_while_paused_are_confirmed_when_the_engine_acts():
    app = scene_app("paused")
    async with app.run_test(size=MEDIUM, notifications=True) as pilot:
        state = app.store.snapshot()
        await pilot.press("c")
        await pilot.pause()
        assert "saving last.pth now" in "\n".join(screen_lines(app))
        app.store.emit(ev.CheckpointSaved(t=state.last_t + 0.1, epoch=state.epoch, kind="manual",
                                          path="runs/x/last.pth", step=state.step))
        app.refresh_view()
        await pilot.pause()
        screen = "\n".join(screen_lines(app))
        assert "saved last.pth (epoch 13, step 180)" in screen
        assert "saved manual checkpoint" in region_text(app, app.query_one("#events"))  # the toasts cover the rest
        await pilot.press("minus")
        await pilot.pause()
        assert app.control.take().lr_factor == 0.5
        app.store.emit(ev.LrChanged(t=state.last_t + 0.2, epoch=state.epoch, step=state.step, old_lr=state.lr,
                                    new_lr=state.lr / 2, reason="manual"))
        app.refresh_view()
        await pilot.pause()
        new_lr = f"{state.lr / 2:.2e}"
        assert f"learning rate now {new_lr}" in "\n".join(screen_lines(app))
        assert new_lr in region_text(app, app.query_one("#lr-text"))
        assert app.store.snapshot().status == "PAUSED"


# ----- a terminal too small says what the run is doing, not always "training continues" -----
@pytest.mark.parametrize("scene, says", [("running", "training continues"),
                                         ("paused", "training is paused"),
                                         ("early-stopped", "the run has ended")])
async def test_terminal_too_small_says_what_the_run_is_doing(scene, says):
    app = scene_app(scene)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        shown = screen_text(app)
        assert "terminal too small" in shown
        assert says in shown, shown
        if scene != "running":
            assert "training continues" not in shown


# ----- a resize while a dialog is open lays the dashboard out for the new size -----
@pytest.mark.parametrize("dialog", ["q", "question_mark"])
async def test_resize_under_a_dialog_lays_the_dashboard_out_for_the_new_size(dialog):
    expected = scene_app("running")
    async with expected.run_test(size=MEDIUM) as pilot:
        await pilot.pause()
        medium_screen = screen_text(expected)
    app = scene_app("running")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press(dialog)
        await pilot.pause()
        await pilot.resize_terminal(*MEDIUM)
        await pilot.pause()
        await pilot.press("escape" if dialog == "question_mark" else "n")
        await pilot.pause()
        assert screen_text(app) == medium_screen
        await pilot.press(dialog)
        await pilot.pause()
        await pilot.resize_terminal(40, 12)
        await pilot.pause()
        await pilot.press("escape" if dialog == "question_mark" else "n")
        await pilot.pause()
        assert "terminal too small" in screen_text(app)


# ----- q while paused does not say the run is training -----
async def test_quit_while_paused_says_the_run_is_paused():
    app = scene_app("paused")
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.press("q")
        await pilot.pause()
        shown = screen_text(app)
        assert "Training is paused, not finished." in shown
        assert "still running" not in shown and "keep training" not in shown
        assert "the run stays paused" in shown
        await pilot.press("n")
        await pilot.pause()
        assert app.control.paused
    app = scene_app("running")
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert "Training is still running." in screen_text(app)
