"""The console under a real pseudo-terminal: SIGTERM, and a hang-up (the SSH connection
dropping, i.e. the terminal's master side closing) must not lose the run."""

import json
import signal
import time
from pathlib import Path

import pytest

from tui_trainer.engine.checkpoint import load_run_checkpoint
from tui_trainer.testing import PtyRun

pytestmark = pytest.mark.timeout(180)


def wait_for_epochs(run_dir: Path, n: int, timeout: float = 90.0) -> None:
    events = run_dir / "events.jsonl"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if events.exists() and events.read_text().count('"event":"EpochEnd"') >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {n} epochs within {timeout}s")


def last_event(run_dir: Path) -> dict:
    lines = (run_dir / "events.jsonl").read_text().strip().splitlines()
    return json.loads(lines[-1])


ARGS = ["run", "synthetic", "--model", "mlp", "--synthetic-shape", "1x8x8", "--synthetic-train", "2048",
        "--synthetic-val", "256", "--batch-size", "32", "--epochs", "500", "--checkpoint-every", "0"]


def test_sigterm_saves_marks_interrupted_restores_terminal(tmp_path):
    run_dir = tmp_path / "run"
    run = PtyRun([*ARGS, "--run-dir", str(run_dir)], cwd=tmp_path)
    try:
        wait_for_epochs(run_dir, 2)
        assert b"\x1b[?1049h" in run.output  # the console took the alternate screen
        run.proc.send_signal(signal.SIGTERM)
        code = run.wait(timeout=30)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert code == 143
    end = last_event(run_dir)
    assert end["event"] == "RunFinished" and end["status"] == "interrupted"
    saved = load_run_checkpoint(run_dir / "last.pth")
    assert saved["epoch"] >= 2
    time.sleep(0.2)
    tail = bytes(run.output[-4000:])
    assert b"\x1b[?1049l" in tail  # alternate screen left: the terminal is restored
    assert b"resume with: tui-trainer resume" in tail


def test_a_hangup_leaves_the_run_training_until_it_is_stopped(tmp_path):
    """The console's terminal goes away (the kernel sends SIGHUP): the run trains on as a
    headless one would, without spinning on the dead terminal, and ends with its own exit code."""
    from tui_trainer.control_client import request

    run_dir = tmp_path / "run"
    run = PtyRun([*ARGS, "--patience", "0", "--run-dir", str(run_dir)], cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    try:
        wait_for_epochs(run_dir, 2)
        run.close_terminal()
        time.sleep(1.0)
        assert run.proc.poll() is None
        cpu = [float(x) for x in Path(f"/proc/{run.proc.pid}/task/{run.proc.pid}/stat").read_text()
               .rsplit(")", 1)[1].split()[11:13]]
        epochs = (run_dir / "events.jsonl").read_text().count('"event":"EpochEnd"')
        wait_for_epochs(run_dir, epochs + 3)  # still training
        main_thread = [float(x) for x in Path(f"/proc/{run.proc.pid}/task/{run.proc.pid}/stat").read_text()
                       .rsplit(")", 1)[1].split()[11:13]]
        assert sum(main_thread) - sum(cpu) < 50  # the UI thread is not spinning on the dead terminal (ticks)
        assert request(run_dir, "stop")["ok"]
        code = run.wait(timeout=30)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert code == 0
    end = last_event(run_dir)
    assert end["event"] == "RunFinished" and end["status"] == "stopped"
    assert (run_dir / "report.json").exists()


def test_hangup_with_on_hangup_stop_saves_the_run_and_leaves(tmp_path):
    run_dir = tmp_path / "run"
    run = PtyRun([*ARGS, "--run-dir", str(run_dir), "--on-hangup", "stop"], cwd=tmp_path)
    try:
        wait_for_epochs(run_dir, 2)
        started = time.monotonic()
        run.close_terminal()  # what a dropped SSH connection does: the kernel sends SIGHUP
        code = run.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert code != 0
    assert took < 30  # ended rather than spinning on a dead terminal
    end = last_event(run_dir)
    assert end["event"] == "RunFinished" and end["status"] == "interrupted"
    assert load_run_checkpoint(run_dir / "last.pth")["epoch"] >= 2
