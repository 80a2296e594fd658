"""`show` on a run another process is still writing: the console follows it and says it is a
read-only live view; a run whose writer is gone without an end is not called running; the
plain log says where it stops and why."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tui_trainer import events as ev
from tui_trainer.frontends.tui.scenes import cifar_run
from tui_trainer.runlog import RunDirLock

from .screen import region_text, screen_lines


def write_events(run_dir: Path, events) -> None:
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as fh:
        for event in events:
            fh.write(ev.to_json(event) + "\n")


@pytest.fixture
def live_run(tmp_path):
    """A run directory as a training process leaves it mid-run: its lock held, events so far."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lock = RunDirLock(run_dir).acquire()
    events = cifar_run(4, 120, num_epochs=10)
    write_events(run_dir, events[:-30])
    yield run_dir, lock, events
    lock.release()


async def test_show_follows_a_live_run_and_says_so(live_run):
    from tui_trainer.frontends.tui.launch import build_show_app

    run_dir, lock, events = live_run
    app = build_show_app(run_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        header = screen_lines(app)[0]
        assert "RUNNING" in header and "LIVE" in header and "read-only" in header
        before = app.store.snapshot().step
        write_events(run_dir, events[-30:])  # the writer carries on
        end = time.monotonic() + 5
        while app.store.snapshot().step == before and time.monotonic() < end:
            await pilot.pause(0.1)
        assert app.store.snapshot().step == 120
        assert app.check_action("pause", ()) is False  # nothing to control from here
        lock.release()  # the writer died without recording an end
        await pilot.pause(1.2)
        header = screen_lines(app)[0]
        assert "LIVE" not in header and "RUNNING" not in header.replace("NOT RUNNING", "")
        assert "NOT RUNNING · no end recorded" in header
        assert "ETA --" in region_text(app, app.query_one("#progress"))


def test_plain_show_says_the_log_is_a_snapshot_of_a_live_run(live_run, cli):
    run_dir, lock, _ = live_run
    result = cli("show", run_dir)
    assert result.code == 0
    assert "a snapshot of a live run" in result.out.splitlines()[-1]
    lock.release()
    result = cli("show", run_dir)
    assert "no end recorded" in result.out.splitlines()[-1]


def test_plain_show_of_a_finished_run_adds_nothing(tmp_path, cli):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_events(run_dir, cifar_run(3, 0, num_epochs=3, stop="user"))
    result = cli("show", run_dir)
    assert result.out.splitlines()[-1].startswith("run stopped by the user after 3 epochs")
