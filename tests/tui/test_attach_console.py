"""The `attach` console, in process: a run directory as a training process leaves it (its lock
held, its control channel served by a real ControlServer on a real Control), the console built
by `build_attach_app` as the CLI builds it. Keys reach the run's Control through the socket and
the screen answers when the run's events say so; `q` offers detach / stop / cancel; the end
rings the bell once; a finished run opens on its report; a process that dies is said."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tui_trainer import events as ev
from tui_trainer.control_server import ControlServer, RunStatus
from tui_trainer.engine.control import Control
from tui_trainer.frontends.tui.scenes import cifar_run
from tui_trainer.runlog import RunDirLock

from .screen import screen_lines, screen_text

pytestmark = pytest.mark.timeout(60)


def write_events(run_dir: Path, events) -> None:
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as fh:
        for event in events:
            fh.write(ev.to_json(event) + "\n")


@pytest.fixture
def served_run(tmp_path):
    """A run mid-way: lock held, events so far on disk, the control channel answering."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lock = RunDirLock(run_dir).acquire()
    events = cifar_run(4, 120, num_epochs=10)
    write_events(run_dir, events)
    control, status = Control(), RunStatus()
    for event in events:
        status.emit(event)
    server = ControlServer(run_dir, control, status.snapshot)
    assert server.start()
    yield run_dir, lock, control, status
    server.close()
    lock.release()


async def wait_for(pilot, condition, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        await pilot.pause(0.05)


async def test_keys_act_through_the_socket_and_the_screen_follows_the_run(served_run):
    from tui_trainer.frontends.tui.attach import build_attach_app

    run_dir, lock, control, status = served_run
    app = build_attach_app(run_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        header = screen_lines(app)[0]
        assert "RUNNING" in header and "ATTACHED" in header
        assert "epoch 5/10" in screen_text(app)  # the dashboard rebuilt from the whole record
        await pilot.press("p")
        await wait_for(pilot, lambda: control.paused)
        assert "PAUSING" in screen_lines(app)[0]  # what was asked, until the run says it did it
        write_events(run_dir, [ev.Paused(epoch=5, step=120)])
        await wait_for(pilot, lambda: "PAUSED" in screen_lines(app)[0] and "PAUSING" not in screen_lines(app)[0])
        await pilot.press("p")
        await wait_for(pilot, lambda: not control.paused)
        write_events(run_dir, [ev.Resumed(epoch=5, step=120, paused_for=1.0)])
        await pilot.press("minus")
        await wait_for(pilot, lambda: control.take().lr_factor == pytest.approx(0.5))
        await pilot.press("c")
        await wait_for(pilot, lambda: control.take().checkpoint)
        await pilot.press("q")
        await pilot.pause()
        assert "detach: leave this console, the run goes on" in screen_text(app)
        await pilot.press("n")  # cancel: still attached
        await pilot.pause()
        assert "detach:" not in screen_text(app) and app.is_running
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
    assert control.stop_reason is None  # detaching leaves the run alone


async def test_stop_from_the_dialog_then_the_end_rings_once_and_shows_the_report(served_run):
    from tui_trainer.frontends.tui.attach import build_attach_app

    run_dir, lock, control, status = served_run
    app = build_attach_app(run_dir)
    bells = []
    app.bell = lambda: bells.append(1)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("s")
        await wait_for(pilot, lambda: control.stop_reason == "user")
        assert "STOPPING" in screen_lines(app)[0]
        ending = cifar_run(5, 0, num_epochs=10, stop="user")
        write_events(run_dir, [e for e in ending if isinstance(e, (ev.StopRequested, ev.EvaluationReport,
                                                                    ev.RunFinished))])
        await wait_for(pilot, lambda: "STOPPED" in screen_lines(app)[0])
        await pilot.pause(0.5)
        assert bells == [1]
        assert app.query_one("#views").current == "report"


async def test_a_finished_run_opens_on_its_report_and_a_dead_process_is_said(tmp_path):
    from tui_trainer.frontends.tui.attach import build_attach_app

    done = tmp_path / "done"
    done.mkdir()
    write_events(done, cifar_run(3, 0, num_epochs=3, stop="user"))
    app = build_attach_app(done)
    bells = []
    app.bell = lambda: bells.append(1)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        assert app.query_one("#views").current == "report" and "STOPPED" in screen_lines(app)[0]
        assert app.check_action("pause", ()) is False
    assert bells == []  # a replay is no news

    live = tmp_path / "live"
    live.mkdir()
    lock = RunDirLock(live).acquire()
    write_events(live, cifar_run(2, 50, num_epochs=10))
    app = build_attach_app(live)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        assert "ATTACHED" in screen_lines(app)[0]
        lock.release()  # the training process died (SIGKILL records nothing)
        await wait_for(pilot, lambda: "NOT RUNNING" in screen_lines(app)[0])
        assert app.check_action("pause", ()) is None  # nothing left to steer
        assert any("resume" in n.message for n in app._notifications)


def test_attach_serves_the_console_wherever_a_textual_driver_is_set(monkeypatch):
    """`attach --web` and the like run the console through TEXTUAL_DRIVER, with no terminal."""
    import sys

    from tui_trainer.commands.attach import wants_console

    monkeypatch.setattr(sys, "stdout", open(os.devnull, "w"))  # not a terminal
    monkeypatch.delenv("TEXTUAL_DRIVER", raising=False)
    assert wants_console() is False
    monkeypatch.setenv("TEXTUAL_DRIVER", "textual_serve.driver:WebDriver")
    assert wants_console() is True


async def test_several_consoles_attach_and_steer_the_same_run_at_once(served_run):
    from tui_trainer.frontends.tui.attach import build_attach_app

    run_dir, lock, control, status = served_run
    first, second = build_attach_app(run_dir), build_attach_app(run_dir)
    async with first.run_test(size=(120, 36)) as one, second.run_test(size=(120, 36)) as two:
        await one.press("p")
        await wait_for(one, lambda: control.paused)
        write_events(run_dir, [ev.Paused(epoch=5, step=120)])
        await wait_for(two, lambda: "PAUSED" in screen_lines(second)[0])  # the other console sees it
        await two.press("p")  # and resumes it: its footer said Resume
        await wait_for(two, lambda: not control.paused)
        await wait_for(two, lambda: first.control.sent == 1 and second.control.sent == 1)  # each answered


async def test_the_console_that_started_the_run_rings_once_at_its_end_too():
    from tui_trainer.frontends.tui.app import TrainerApp
    from tui_trainer.frontends.tui.store import StateStore

    class Engine:  # the Session as the console sees it, with nothing training
        running, outcome, error = True, None, None

        def start(self, on_done=None) -> None:
            pass

        def detach(self, console) -> None:
            pass

    store, bells = StateStore(), []
    app = TrainerApp(store, Control(), Engine())
    app.bell = lambda: bells.append(1)
    events = cifar_run(3, 0, num_epochs=3, stop="user")
    async with app.run_test(size=(120, 36)) as pilot:
        for event in events[:-3]:
            store.emit(event)
        await pilot.pause(0.4)
        assert bells == []
        for event in events[-3:]:  # the stop, the report, the end
            store.emit(event)
        await wait_for(pilot, lambda: "STOPPED" in screen_lines(app)[0])
        await pilot.pause(0.4)
    assert bells == [1]


async def test_the_help_of_an_attached_console_says_what_its_keys_do_here(served_run):
    """In an attached console ctrl+z suspends only the viewer (the run trains on) and q asks
    detach / stop / cancel: the help must not promise the starting console's pause and save."""
    from tui_trainer.frontends.tui.attach import build_attach_app

    run_dir, lock, control, status = served_run
    app = build_attach_app(run_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        text = " ".join(screen_text(app).split())
        assert "training pauses first" not in text and "saves last.pth" not in text
        assert "the run keeps training" in text
        assert "detach (the run goes on), stop the run, or cancel" in text
