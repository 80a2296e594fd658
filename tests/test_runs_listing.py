"""`ls`, `ctl` and the RUN argument, in process on run directories as runs leave them: one
finished, one whose process died without an end (crashed), one still training (its lock held
and its control channel served here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tui_trainer import events as ev
from tui_trainer.control_server import ControlServer, RunStatus
from tui_trainer.engine.control import Control
from tui_trainer.frontends.tui.scenes import cifar_run
from tui_trainer.runlog import RunDirLock


def write_run(run_dir: Path, events, shift: float = 0.0) -> None:
    run_dir.mkdir(parents=True)
    with open(run_dir / "events.jsonl", "w", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps({**json.loads(ev.to_json(event)), "t": event.t + shift}) + "\n")


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    write_run(root / "done", cifar_run(3, 0, num_epochs=3, stop="user"))
    write_run(root / "dead", cifar_run(2, 40, num_epochs=10), shift=100.0)
    (root / "dead" / "last.pth").write_bytes(b"saved at epoch 2")  # what resume starts from
    live = root / "live"
    events = cifar_run(4, 120, num_epochs=10)
    write_run(live, events, shift=200.0)
    lock = RunDirLock(live).acquire()
    control, status = Control(), RunStatus()
    for event in events:
        status.emit(event)
    server = ControlServer(live, control, status.snapshot)
    assert server.start()
    yield root, control
    server.close()
    lock.release()


def test_ls_lists_newest_first_with_each_status(runs, cli):
    result = cli("ls", "--json")
    assert result.code == 0
    entries = json.loads(result.out)
    assert [(e["name"], e["status"]) for e in entries] == [("live", "running"), ("dead", "crashed"),
                                                         ("done", "stopped")]
    live, dead, done = entries
    assert live["pid"] == os.getpid() and (live["epoch"], live["epochs"]) == (5, 10)
    assert dead["resume"] == "tui-trainer resume runs/dead" and dead["pid"] is None
    assert done["resume"] == "" and done["best_epoch"] == 3
    text = cli("ls").out
    assert f"running (pid {os.getpid()})" in text
    assert "dead: crashed (no end recorded); resume with: tui-trainer resume runs/dead" in text


def test_ctl_steers_a_running_run_and_refuses_the_others_in_one_line(runs, cli):
    root, control = runs
    result = cli("ctl", "live", "pause")
    assert result.code == 0 and json.loads(result.out)["ok"] and control.paused
    result = cli("ctl", "runs/live", "lr", "/2")
    assert result.code == 0 and control.take().lr_factor == pytest.approx(0.5)
    status = json.loads(cli("ctl", "live", "status").out)
    assert status["status"] == "running" and status["epoch"] == 5 and status["pause_requested"] is True
    for args, words in ((("dead", "pause"), "is not running (crashed); resume with: tui-trainer resume runs/dead"),
                        (("done", "stop"), "is not running (stopped)"),
                        (("live", "lr"), "ctl lr needs a VALUE"),
                        (("live", "lr", "fast"), "is not x2, /2 or a learning rate"),
                        (("live", "pause", "now"), "takes no value"),
                        (("nowhere", "status"), "no run nowhere")):
        result = cli("ctl", *args)
        assert result.code == 2 and result.err.count("\n") == 1 and words in result.err, (args, result.err)
    assert control.stop_reason is None


def test_attach_with_no_run_picks_the_most_recent_and_refuses_a_bad_one(runs, cli):
    from tui_trainer.runs_index import resolve_run

    assert resolve_run(None) == Path("runs/live")
    assert resolve_run("dead") == Path("runs/dead")
    result = cli("attach", "nowhere")
    assert result.code == 2 and result.err.count("\n") == 1


def test_a_run_killed_before_its_first_checkpoint_offers_no_resume_that_would_fail(runs, cli):
    """Killed in its first epoch, a run has nothing `resume` can start from (it refuses: "no
    checkpoint"), so ls, ctl and show must not tell the user to run it."""
    root, _ = runs
    write_run(root / "early", cifar_run(0, 10, num_epochs=10), shift=300.0)
    entry = next(e for e in json.loads(cli("ls", "--json").out) if e["name"] == "early")
    assert entry["status"] == "crashed" and entry["resume"] == ""
    text = cli("ls").out
    assert "early: crashed (no end recorded) before it saved a checkpoint: nothing to resume" in text
    assert "tui-trainer resume runs/early" not in text
    result = cli("ctl", "early", "pause")
    assert result.code == 2 and result.err.count("\n") == 1
    assert "is not running (crashed)" in result.err and "nothing to resume" in result.err
    assert "tui-trainer resume" not in result.err
    shown = cli("show", "runs/early").out
    assert "nothing to resume" in shown and "tui-trainer resume" not in shown


def test_the_commands_printed_to_copy_keep_a_run_directory_with_a_space_one_word(runs, cli):
    """`tui-trainer resume runs/my run` pasted into a shell resumes `runs/my` with a stray `run`."""
    root, _ = runs
    write_run(root / "my run", cifar_run(2, 40, num_epochs=10), shift=400.0)
    (root / "my run" / "last.pth").write_bytes(b"saved at epoch 2")
    entry = next(e for e in json.loads(cli("ls", "--json").out) if e["name"] == "my run")
    assert entry["resume"] == "tui-trainer resume 'runs/my run'"
    assert "resume with: tui-trainer resume 'runs/my run'" in cli("ls").out
    result = cli("ctl", "my run", "status")
    assert result.code == 2 and "resume with: tui-trainer resume 'runs/my run'" in result.err
    assert "`tui-trainer resume 'runs/my run'` continues it" in cli("show", "runs/my run").out


def test_ls_on_one_run_directory_lists_that_run(runs, cli, monkeypatch):
    """`ls runs/NAME` (a run, not a folder of runs) said "no runs under runs/NAME/"."""
    result = cli("ls", "runs/dead/")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].startswith("NAME") and lines[1].startswith("dead ") and "crashed" in lines[1]
    assert "no runs" not in result.out and not any(line.startswith(("live", "done")) for line in lines)
    assert [e["name"] for e in json.loads(cli("ls", "runs/done", "--json").out)] == ["done"]
    monkeypatch.chdir(runs[0] / "done")  # from inside the run directory
    assert [e["name"] for e in json.loads(cli("ls", ".", "--json").out)] == ["done"]
