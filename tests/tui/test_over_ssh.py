"""Runs that outlive their terminal, end to end in tmux as a person over SSH uses them: the
console's terminal is killed and the run trains on; `attach` in a new terminal shows it and its
keys steer it; `q` detaches; `ctl stop` ends it with the report and exit code 0; `ls` follows
each state. And --detach, then attach, then stop; a run SIGKILLed is crashed in `ls`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (.ci/run installs it)")]

RUN = ["run", "synthetic", "--model", "mlp", "--synthetic-shape", "1x8x8", "--synthetic-train", "512",
       "--synthetic-val", "128", "--batch-size", "32", "--epochs", "5000", "--patience", "0",
       "--checkpoint-every", "0", "--threads", "1"]
# Ignores the hang-up itself (a handler, not SIG_IGN, so the child starts with the default) and
# keeps the child's exit code once the terminal is gone.
KEEP_EXIT_CODE = ("import signal, subprocess, sys\n"
                  "signal.signal(signal.SIGHUP, lambda *a: None)\n"
                  "code = subprocess.call(sys.argv[2:])\n"
                  "open(sys.argv[1], 'w').write(str(code))\n")


def env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", TERM="xterm-256color")


def cli(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_trainer", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env())


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def count(run_dir: Path, name: str) -> int:
    return sum(e["event"] == name for e in events(run_dir))


def wait_until(condition, timeout: float = 60.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Tmux:
    def __init__(self, name: str, command: list[str], cwd: Path) -> None:
        self.name = name
        line = " ".join(subprocess.list2cmdline([c]) for c in command)
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "36", "-c", str(cwd),
                        f"exec env {self._env()} {line}"], check=True, env=env())

    @staticmethod
    def _env() -> str:
        keep = {k: env()[k] for k in ("PYTHONPATH", "OMP_NUM_THREADS", "PATH", "HOME") if k in env()}
        return " ".join(f"{k}={subprocess.list2cmdline([v])}" for k, v in keep.items()) + " TERM=xterm-256color"

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return out.stdout

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        return wait_until(lambda: text in self.screen() and self.screen(), timeout, f"{text!r} on the screen")

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def status_of(run_dir: Path) -> str:
    """What `tui-trainer ls` says of the run (in this process: ls is checked as a command below)."""
    from tui_trainer.runs_index import list_runs

    return next(e.status for e in list_runs(run_dir.parent) if e.name == run_dir.name)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def test_the_run_outlives_its_terminal_and_attach_steers_it(tmp_path):
    run_dir, rc_file = tmp_path / "runs" / "r", tmp_path / "rc"
    tag = f"tt{os.getpid()}"
    first = Tmux(f"{tag}-a", [sys.executable, "-c", KEEP_EXIT_CODE, str(rc_file), sys.executable, "-m",
                              "tui_trainer", *RUN, "--run-dir", str(run_dir)], tmp_path)
    second = None
    try:
        first.wait_for("RUNNING", 40)
        wait_until(lambda: count(run_dir, "EpochEnd") >= 2, what="two epochs")
        pid = int((run_dir / ".lock").read_text())
        assert status_of(run_dir) == "running"
        first.kill()  # the SSH connection drops: the terminal and the shell are gone
        time.sleep(1.0)
        assert pid_alive(pid)
        epochs = count(run_dir, "EpochEnd")
        wait_until(lambda: count(run_dir, "EpochEnd") > epochs + 5, 20, "training to go on")
        assert status_of(run_dir) == "running" and not rc_file.exists()

        second = Tmux(f"{tag}-b", [sys.executable, "-m", "tui_trainer", "attach", "r"], tmp_path)
        screen = second.wait_for("ATTACHED", 30)
        shown = int(screen.split("epoch ", 1)[1].split("/", 1)[0])
        assert shown >= epochs  # the dashboard is at the current epoch, history rebuilt
        second.keys("p")
        wait_until(lambda: count(run_dir, "Paused") == 1, 10, "a Paused event")
        second.wait_for("PAUSED", 10)
        assert status_of(run_dir) == "paused"
        steps = [e for e in events(run_dir) if e["event"] in ("StepProgress", "EpochEnd")]
        time.sleep(1.0)
        assert [e for e in events(run_dir) if e["event"] in ("StepProgress", "EpochEnd")] == steps  # halted
        second.keys("p")
        wait_until(lambda: count(run_dir, "Resumed") == 1, 10, "a Resumed event")
        second.wait_for("RUNNING", 10)
        second.keys("q")
        second.wait_for("detach", 10)
        second.keys("d")
        wait_until(lambda: not second.alive(), 10, "the attached console to close")
        epochs = count(run_dir, "EpochEnd")
        wait_until(lambda: count(run_dir, "EpochEnd") > epochs + 2, 20, "training after detaching")

        reply = cli("ctl", run_dir, "stop")
        assert reply.returncode == 0 and json.loads(reply.stdout)["ok"]
        assert wait_until(lambda: rc_file.exists() and rc_file.read_text(), 30, "the run's exit") == "0"
        assert (run_dir / "report.json").exists()
        assert events(run_dir)[-1]["event"] == "RunFinished" and events(run_dir)[-1]["status"] == "stopped"
        listing = cli("ls", run_dir.parent)
        row = listing.stdout.splitlines()[1].split()
        assert listing.returncode == 0 and row[:2] == ["r", "stopped"] and row[2].endswith("/5000")
        assert not (run_dir / "control.sock").exists()
        refused = cli("ctl", run_dir, "pause")
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "not running (stopped)" in refused.stderr
    finally:
        for session in (first, second):
            if session is not None:
                session.kill()
        if (run_dir / ".lock").exists() and run_dir.exists():
            text = (run_dir / ".lock").read_text().strip()
            if text.isdigit() and pid_alive(int(text)):
                os.kill(int(text), signal.SIGKILL)


def detach(run_dir: Path, *more: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tui_trainer", *RUN, "--detach", "--run-dir", str(run_dir), *more],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())


def test_detach_then_attach_then_stop_and_a_killed_run_is_crashed(tmp_path):
    run_dir, killed_dir = tmp_path / "runs" / "bg", tmp_path / "runs" / "killed"
    starting = detach(run_dir)  # both at once: each waits for torch to load
    time.sleep(0.2)
    starting_killed = detach(killed_dir)
    out, err = starting.communicate(timeout=90)
    assert starting.returncode == 0, err
    assert f"tui-trainer attach {run_dir}" in out
    pid = int((run_dir / ".lock").read_text())
    assert os.getsid(pid) == pid  # a session of its own: no terminal's hang-up reaches it
    tmux = Tmux(f"tt{os.getpid()}-d", [sys.executable, "-m", "tui_trainer", "attach", str(run_dir)], tmp_path)
    try:
        tmux.wait_for("ATTACHED", 30)
        tmux.keys("s")  # stop early, from the attached console
        tmux.wait_for("STOPPED", 30)
        tmux.wait_for("Report", 10)
        wait_until(lambda: not pid_alive(pid), 30, "the detached run to end")
    finally:
        tmux.kill()
    assert status_of(run_dir) == "stopped"
    assert "run stopped by the user" in (run_dir / "output.log").read_text()

    refused = cli(*RUN, "--detach", "--run-dir", tmp_path / "runs" / "bad", "--batch-size", "0")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and not (tmp_path / "runs" / "bad").exists()

    assert starting_killed.wait(timeout=90) == 0
    kpid = int((killed_dir / ".lock").read_text())
    wait_until(lambda: count(killed_dir, "EpochEnd") >= 1, what="an epoch")
    wait_until(lambda: (killed_dir / "last.pth").exists(), what="its checkpoint")  # what resume starts from
    os.kill(kpid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(kpid), 10, "the kill")
    listing = cli("ls", tmp_path / "runs")
    line = next(l for l in listing.stdout.splitlines() if l.startswith("killed "))
    assert " crashed " in line
    assert f"resume with: tui-trainer resume {killed_dir}" in listing.stdout
    assert listing.stdout.index("killed") < listing.stdout.index("bg ")  # newest first
