"""The control channel every run serves in its run directory (control.sock): what it answers,
who it refuses, and that no client - hostile, broken or silent - can slow or disturb a run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tui_trainer import events as ev
from tui_trainer.control_client import ControlUnavailable, request
from tui_trainer.control_server import ControlServer, RunStatus
from tui_trainer.engine.control import Control

pytestmark = pytest.mark.timeout(60)


def started(lr: float = 0.1) -> ev.RunStarted:
    return ev.RunStarted(run_name="r", run_dir="r", dataset="d", model="m", num_params=1, device="cpu",
                         device_name="cpu", precision="fp32", num_epochs=5, start_epoch=0, steps_per_epoch=4,
                         batch_size=2, accum_steps=1, train_size=8, val_size=2, num_classes=2,
                         class_names=("a", "b"), optimizer="sgd", lr=lr, scheduler="none")


@pytest.fixture
def served(tmp_path):
    """A ControlServer for a run that has started (its RunState as a live run's is)."""
    control, status = Control(), RunStatus()
    status.emit(started())
    server = ControlServer(tmp_path, control, status.snapshot)
    assert server.start(), server.error
    yield tmp_path, control, status, server
    server.close()


def raw_exchange(run_dir: Path, payload: bytes, timeout: float = 5.0) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(str(run_dir / "control.sock"))
        try:
            sock.sendall(payload)
        except OSError:
            pass  # the run may close the connection before a long line is all sent
        data = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.endswith(b"\n") and payload.endswith(b"\n") and len(payload) < 4096:
                    break
        except OSError:
            pass
    return data


def test_the_socket_is_private_and_requests_act_on_the_control(served):
    run_dir, control, status, _ = served
    mode = os.stat(run_dir / "control.sock", follow_symlinks=False).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    reply = request(run_dir, "status")
    assert reply["ok"] and reply["status"] == "running" and reply["pid"] == os.getpid()
    assert request(run_dir, "pause")["ok"] and control.paused
    status.emit(ev.Paused(epoch=1, step=2))
    assert request(run_dir, "status")["status"] == "paused"
    assert request(run_dir, "resume")["ok"] and not control.paused
    assert request(run_dir, "checkpoint")["ok"]
    assert request(run_dir, "lr", "x2")["ok"] and request(run_dir, "lr", "/4")["ok"]
    assert control.take().lr_factor == pytest.approx(0.5)  # x2 then /4: one factor for the engine
    assert request(run_dir, "lr", "0.3")["ok"]  # an absolute LR: a factor on the LR in force (0.1)
    requests = control.take()
    assert requests.lr_factor == pytest.approx(3.0) and not requests.checkpoint
    assert request(run_dir, "stop")["ok"] and control.stop_reason == "user"


def test_bad_requests_get_an_error_reply_and_change_nothing(served):
    run_dir, control, _, _ = served
    for payload in (b"{not json\n", b"[1, 2]\n", b'{"cmd": 3}\n', b'{"cmd": "explode"}\n',
                    b'{"cmd": "lr", "value": "-1"}\n', b'{"cmd": "lr", "value": "fast"}\n', b"\xff\xfe\n"):
        reply = json.loads(raw_exchange(run_dir, payload).decode())
        assert reply["ok"] is False and reply["error"], payload
    assert control.take().lr_factor == 1.0 and not control.paused and control.stop_reason is None
    reply = raw_exchange(run_dir, b"x" * (1 << 20) + b"\n")  # 1 MB line: refused, connection closed
    assert json.loads(reply.decode().splitlines()[0])["error"].startswith("request longer than")
    assert request(run_dir, "status")["ok"]  # and the run still answers


def test_a_client_that_connects_and_says_nothing_holds_up_no_one(served):
    run_dir, _, _, _ = served
    silent = [socket.socket(socket.AF_UNIX) for _ in range(5)]
    try:
        for sock in silent:
            sock.connect(str(run_dir / "control.sock"))
        sock.sendall(b'{"cmd": "sta')  # half a request, never finished
        began = time.monotonic()
        assert request(run_dir, "status")["ok"]
        assert time.monotonic() - began < 0.5
    finally:
        for sock in silent:
            sock.close()


def test_a_stale_socket_is_replaced_and_the_socket_goes_at_close(tmp_path):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "control.sock"))  # what a SIGKILLed run leaves: nobody listens
    stale.close()
    with pytest.raises(ControlUnavailable):
        request(tmp_path, "status")
    server = ControlServer(tmp_path, Control(), RunStatus().snapshot)
    assert server.start()
    assert request(tmp_path, "status")["ok"]
    server.close()
    assert not (tmp_path / "control.sock").exists()
    with pytest.raises(ControlUnavailable):
        request(tmp_path, "status")


def test_a_symlink_planted_as_the_socket_is_never_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "control.sock").symlink_to(victim)
    server = ControlServer(run_dir, Control(), RunStatus().snapshot)
    assert server.start()
    try:
        assert victim.read_text() == "keep me\n"
        assert stat.S_ISSOCK(os.stat(run_dir / "control.sock", follow_symlinks=False).st_mode)
        assert request(run_dir, "status")["ok"]
    finally:
        server.close()
    assert victim.read_text() == "keep me\n"


def test_a_run_directory_longer_than_a_socket_address_still_works(tmp_path):
    run_dir = tmp_path / ("d" * 60) / ("e" * 60)
    run_dir.mkdir(parents=True)
    assert len(os.fsencode(str(run_dir / "control.sock"))) > 108
    control = Control()
    server = ControlServer(run_dir, control, RunStatus().snapshot)
    assert server.start(), server.error
    try:
        assert request(run_dir, "status")["status"] == "preparing"
        assert request(run_dir, "pause")["ok"] and control.paused  # the engine pauses at its first step
    finally:
        server.close()
    assert not (run_dir / "control.sock").exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root to run a client as another user (setpriv --reuid)")
def test_another_user_is_refused():
    base = Path(tempfile.mkdtemp(prefix="tt-ctl-"))
    try:
        base.chmod(0o755)  # the directory is reachable by others; the socket itself is not
        control = Control()
        status = RunStatus()
        status.emit(started())
        server = ControlServer(base, control, status.snapshot)
        assert server.start()
        client = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(5)\n"
                  "try:\n s.connect(sys.argv[1])\n"
                  "except OSError as e:\n print('OSError', e.errno); sys.exit()\n"
                  "try:\n s.sendall(b'{\"cmd\":\"pause\"}\\n')\n"
                  "except OSError:\n pass  # refused before the request was read: the reply is there all the same\n"
                  "print(s.recv(4096).decode())\n")
        as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable, "-c", client,
                     str(base / "control.sock")]
        out = subprocess.run(as_nobody, capture_output=True, text=True, timeout=30).stdout
        assert out.startswith("OSError 13")  # mode 0600: the kernel refuses the connection
        os.chmod(base / "control.sock", 0o666)  # past the mode, the peer's uid is checked
        out = subprocess.run(as_nobody, capture_output=True, text=True, timeout=30).stdout
        assert json.loads(out)["ok"] is False and "refused" in json.loads(out)["error"]
        assert not control.paused
        server.close()
    finally:
        shutil.rmtree(base)


def test_an_lr_that_would_not_be_finite_is_refused_and_the_channel_keeps_serving(served):
    """`ctl RUN lr 1e308` on a run at LR 0.1 is a factor of 1e309 (inf): the run would train on an
    infinite LR and fail, and the reply (with that factor in it) could not be written as JSON."""
    run_dir, control, _, _ = served
    reply = request(run_dir, "lr", "1e308")  # a finite LR, yet 1e309 times the LR in force
    assert reply["ok"] is False and "finite" in reply["error"], reply
    assert request(run_dir, "lr", "x1e300")["ok"]  # large, but the LR stays finite (0.1 * 1e300)
    reply = request(run_dir, "lr", "x1e300")  # once more: 1e599 together, not a number a run can train on
    assert reply["ok"] is False and "finite" in reply["error"]
    assert control.take().lr_factor == pytest.approx(1e300)  # only the request that kept the LR finite
    assert request(run_dir, "status")["ok"]  # and the run still answers
