"""The console in a real terminal, start to end: Ctrl+Z suspends it as a shell expects (training
paused first, resumed on `fg`), and closing a finished console leaves the outcome on screen."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tui_trainer.testing import PtyRun

pytestmark = pytest.mark.timeout(180)

SMALL_RUN = ["run", "synthetic", "--model", "mlp", "--synthetic-shape", "1x8x8", "--synthetic-train", "512",
             "--synthetic-val", "128", "--batch-size", "32", "--checkpoint-every", "0"]


def events_of(run_dir: Path) -> list[str]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["event"] for line in path.read_text().splitlines() if line.strip()]


def wait_until(condition, timeout: float = 60.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def process_state(pid: int) -> str:
    """R, S, T (stopped) … from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_ctrl_z_pauses_training_then_suspends_and_fg_resumes(tmp_path):
    run_dir = tmp_path / "run"
    run = PtyRun([*SMALL_RUN, "--epochs", "500", "--run-dir", str(run_dir)], cwd=tmp_path)
    try:
        wait_until(lambda: events_of(run_dir).count("EpochEnd") >= 1, what="an epoch")
        run.send(b"\x1a")  # Ctrl+Z
        wait_until(lambda: process_state(run.proc.pid) == "T", timeout=20, what="the process to stop")
        training = [name for name in events_of(run_dir) if name != "SystemSample"]  # sampled while paused too
        assert training[-1] == "Paused"  # the training paused before the process stopped
        time.sleep(1.0)
        assert process_state(run.proc.pid) == "T"
        run.proc.send_signal(signal.SIGCONT)  # what `fg` sends
        wait_until(lambda: "Resumed" in events_of(run_dir), timeout=20, what="training to resume")
        count = events_of(run_dir).count("EpochEnd")
        wait_until(lambda: events_of(run_dir).count("EpochEnd") > count, what="training after fg")
        run.send(b"s")
        wait_until(lambda: "RunFinished" in events_of(run_dir), what="the run to stop")
        run.send(b"q")
        assert run.wait(timeout=30) == 0
    finally:
        run.kill()


def test_closing_a_finished_console_prints_the_outcome(tmp_path):
    run_dir = tmp_path / "run"
    run = PtyRun([*SMALL_RUN, "--epochs", "2", "--run-dir", str(run_dir)], cwd=tmp_path)
    try:
        wait_until(lambda: "RunFinished" in events_of(run_dir), what="the run to finish")
        time.sleep(0.5)
        assert run.proc.poll() is None  # the console stays open on the report
        run.send(b"q")
        assert run.wait(timeout=30) == 0
        time.sleep(0.2)
    finally:
        run.kill()
    after = bytes(run.output).rsplit(b"\x1b[?1049l", 1)[-1].decode(errors="replace")  # after the alt screen
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", after)
    assert re.search(r"run finished after 2 epochs in \S+; best val_loss \d+\.\d+ at epoch \d \(val acc \d+\.\d\d%\)", text), text
    assert f"run directory {run_dir}" in text
