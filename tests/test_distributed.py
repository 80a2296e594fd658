"""Training under torchrun: two CPU processes (Gloo) on digits, against one process.

Each launch is a real `python -m torch.distributed.run --standalone --nproc-per-node 2`
running the CLI through a small driver script that turns dropout off (so one process and two
do the same arithmetic) and, per test, stops rank 0 through its Control or makes rank 1 fail.

Tolerances, one process (batch 64) against two (batch 32 each, the same 64 samples per step):
losses agree within a relative 1e-5 (float32 sums in a different order); sample counts,
correct counts, accuracies and the confusion matrix are exactly equal.
"""

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

pytestmark = pytest.mark.timeout(300)

LOSS_RTOL = 1e-5
LAUNCH_TIMEOUT = 120  # seconds; a launch that takes longer is a hang
# 22 steps of 64 samples per epoch (1,408 of the 1,437 training images) so that neither run
# pads a shard: the two see exactly the same samples at every step.
RECIPE = ["digits", "--model", "mlp", "--epochs", "3", "--limit-batches", "22", "--checkpoint-every", "2",
          "--device", "cpu"]

DRIVER = r'''
import os
import sys

from tui_trainer.models import mlp

mlp.MLP.__init__.__defaults__ = (10, (256, 128), 0.0)  # no dropout: comparable arithmetic
mode = os.environ.get("TT_TEST_MODE", "")
rank = int(os.environ.get("RANK", "0"))
if mode:
    from tui_trainer.engine import distributed

    distributed.MAX_EXCHANGE_INTERVAL = 4  # tiny epochs: let requests land within a few steps
if mode.startswith("stop_after_epoch:") and rank == 0:
    import tui_trainer.runner as runner

    stop_epoch = int(mode.split(":")[1])
    real_execute = runner.execute

    def execute(config, run_dir, sinks, control, **kwargs):
        class StopAfterEpoch:  # what the console's stop key does, on rank 0 only
            def emit(self, event):
                if type(event).__name__ == "EpochEnd" and event.epoch == stop_epoch:
                    control.request_stop("user")

        return real_execute(config, run_dir, [*sinks, StopAfterEpoch()], control, **kwargs)

    runner.execute = execute
if mode.startswith("fail_at_step:") and rank == 1:
    import torch

    fail_step = int(mode.split(":")[1])
    real_step = torch.optim.AdamW.step
    steps_taken = [0]

    def failing_step(self, *args, **kwargs):  # the optimizer of rank 1 fails at its fail_step-th step
        steps_taken[0] += 1
        if steps_taken[0] == fail_step:
            raise RuntimeError("simulated failure on rank 1")
        return real_step(self, *args, **kwargs)

    torch.optim.AdamW.step = failing_step

from tui_trainer.cli import main

sys.exit(main(sys.argv[1:]))
'''


class Launch:
    def __init__(self, returncode: int, stdout: str, stderr: str, seconds: float) -> None:
        self.returncode, self.stdout, self.stderr, self.seconds = returncode, stdout, stderr, seconds


def torchrun(cwd: Path, driver: Path, *args: str, mode: str = "", timeout: float = LAUNCH_TIMEOUT) -> Launch:
    env = dict(os.environ, TT_TEST_MODE=mode, PYTHONUNBUFFERED="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(driver), *args]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # torchrun passes it on to the workers
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"torchrun {' '.join(args)} did not finish within {timeout:.0f}s\n{out[-3000:]}\n{err[-3000:]}")
    return Launch(proc.returncode, out, err, time.monotonic() - t0)


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]


def of(evs: list[dict], name: str) -> list[dict]:
    return [e for e in evs if e["event"] == name]


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("driver") / "driver.py"
    path.write_text(DRIVER)
    return path


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, driver):
    """An uninterrupted 2-process run with the default run-directory name."""
    cwd = tmp_path_factory.mktemp("two")
    launch = torchrun(cwd, driver, "run", *RECIPE, "--batch-size", "32", "--headless")
    assert launch.returncode == 0, launch.stdout[-2000:] + launch.stderr[-3000:]
    return cwd, launch


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, driver):
    """The same run, stopped from rank 0's Control once epoch 1 has ended."""
    cwd = tmp_path_factory.mktemp("stopped")
    launch = torchrun(cwd, driver, "run", *RECIPE, "--batch-size", "32", "--headless", "--run-dir", "run",
                      mode="stop_after_epoch:1")
    return cwd / "run", launch


def test_two_processes_write_one_run_and_match_one_process(two_process_run, tmp_path, monkeypatch):
    cwd, launch = two_process_run
    # Rank 0 alone chose the run directory's name and wrote the run; nothing else was created.
    run_dirs = list((cwd / "runs").iterdir())
    assert len(run_dirs) == 1, run_dirs
    assert {p.name for p in cwd.iterdir()} == {"runs"}
    run_dir = run_dirs[0]
    assert run_dir.name.startswith("digits-mlp-")
    files = sorted(p.relative_to(cwd).as_posix() for p in cwd.rglob("*") if p.is_file())
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".lock", "best_model.pth", "checkpoint_epoch_2.pth", "config.json", "events.jsonl", "last.pth", "metrics.csv",
        "report.json"]
    assert len([f for f in files if f.endswith("events.jsonl")]) == 1
    # Rank 0 alone printed the log; the other rank printed nothing of its own.
    assert launch.stdout.count("tui-trainer: training run") == 1
    assert launch.stdout.count("final evaluation") == 1
    assert "2 processes" in launch.stdout
    assert "tui-trainer: rank" not in launch.stderr

    two = events(run_dir)
    assert of(two, "RunStarted")[0]["world_size"] == 2
    assert of(two, "RunFinished")[0]["status"] == "finished"

    # One process, the same samples per step (batch 64), in this process.
    from tui_trainer import events as ev
    from tui_trainer.config import make_config
    from tui_trainer.engine.control import Control
    from tui_trainer.models import mlp
    from tui_trainer.runner import execute

    monkeypatch.setattr(mlp.MLP.__init__, "__defaults__", (10, (256, 128), 0.0))
    config = make_config(RECIPE[0], model="mlp", epochs=3, limit_batches=22, checkpoint_every=2, batch_size=64,
                         device="cpu", run_dir=str(tmp_path / "one"))
    sink = ev.ListSink()
    outcome = execute(config, tmp_path / "one", [sink], Control(), system_interval=None)
    assert outcome.status == "finished", outcome.error
    one = [ev.to_dict(e) for e in sink.events]

    epochs_one, epochs_two = of(one, "EpochEnd"), of(two, "EpochEnd")
    assert len(epochs_one) == len(epochs_two) == 3
    for a, b in zip(epochs_one, epochs_two):
        for key in ("train_loss", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=LOSS_RTOL), (a["epoch"], key)
        for key in ("train_acc", "val_acc", "is_best"):
            assert b[key] == a[key], (a["epoch"], key)
    report_one, report_two = of(one, "EvaluationReport")[0], of(two, "EvaluationReport")[0]
    assert report_two["confusion_matrix"] == report_one["confusion_matrix"]
    assert sum(report_two["support"]) == 360  # every validation sample once: unpadded shards
    assert report_two["loss"] == pytest.approx(report_one["loss"], rel=LOSS_RTOL)
    assert json.loads((run_dir / "report.json").read_text())["confusion_matrix"] == report_one["confusion_matrix"]


def test_stop_on_rank0_ends_both_ranks_and_resume_continues_exactly(stopped_run, two_process_run, driver, tmp_path):
    stopped_dir, launch = stopped_run
    run_dir = tmp_path / "run"  # resumed in a copy: the next test resumes the stopped run too
    shutil.copytree(stopped_dir, run_dir, ignore=shutil.ignore_patterns(".lock"))
    assert launch.returncode == 0, launch.stdout[-2000:] + launch.stderr[-3000:]  # both ranks exited cleanly
    assert "tui-trainer: rank" not in launch.stderr
    stopped = events(run_dir)
    end = of(stopped, "RunFinished")[0]
    assert (end["status"], end["epochs_completed"]) == ("stopped", 1)
    assert [e["reason"] for e in of(stopped, "StopRequested")] == ["user"]
    import torch

    last = torch.load(run_dir / "last.pth", weights_only=True)
    assert last["world_size"] == 2 and len(last["rank_rng"]) == 2
    assert last["epoch"] == 1 and 0 < last["step_in_epoch"] < 22  # stopped inside epoch 2, on both ranks
    assert last["epoch_sums"]["count"] == last["step_in_epoch"] * 64  # both ranks' samples, not rank 0's

    # a run stopped with the stop key counts as done: --epochs trains it on, here to its planned 3
    resumed = torchrun(run_dir.parent, driver, "resume", "run", "--headless", "--epochs", "3")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    after = events(run_dir)
    assert of(after, "RunFinished")[-1]["status"] == "finished"
    reference = {e["epoch"]: e for e in of(events(next((two_process_run[0] / "runs").iterdir())), "EpochEnd")}
    resumed_epochs = of(after, "EpochEnd")[1:]  # epoch 1 is from before the stop
    assert [e["epoch"] for e in resumed_epochs] == [2, 3]
    for e in resumed_epochs:  # the same process count resumes exactly
        ref = reference[e["epoch"]]
        for key in ("train_loss", "val_loss"):
            assert e[key] == pytest.approx(ref[key], rel=1e-9, abs=0), (e["epoch"], key)
        for key in ("train_acc", "val_acc"):
            assert e[key] == ref[key], (e["epoch"], key)


def test_failure_on_rank1_ends_the_run_with_its_error_on_rank0(driver, tmp_path):
    # --dist-timeout 30 bounds the wait even if the closed connection went unnoticed.
    launch = torchrun(tmp_path, driver, "run", *RECIPE, "--batch-size", "32", "--headless", "--run-dir", "run",
                      "--dist-timeout", "30", mode="fail_at_step:30", timeout=90)
    assert launch.returncode != 0
    assert "error: rank 1 failed: RuntimeError: simulated failure on rank 1" in launch.stdout
    failed = of(events(tmp_path / "run"), "RunFailed")
    assert len(failed) == 1 and failed[0]["error"] == "rank 1 failed: RuntimeError: simulated failure on rank 1"
    assert failed[0]["epoch"] == 2  # step 30 is in epoch 2
    assert "Connection closed" not in launch.stdout
    assert launch.seconds < 60


def test_resume_with_one_process_restarts_the_interrupted_epoch(stopped_run, tmp_path, monkeypatch, capsys):
    run_dir, _ = stopped_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    from tui_trainer import cli

    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["resume", str(copy), "--headless", "--epochs", "3"]) == 0  # stopped with the stop key
    out = capsys.readouterr().out
    assert "resuming with 1 process(es) a run saved by 2" in out
    assert "that epoch restarts from its first batch" in out
    resumed = events(copy)
    started = of(resumed, "RunStarted")[-1]
    assert started["world_size"] == 1 and started["start_epoch"] == 1
    assert [e["epoch"] for e in of(resumed, "EpochEnd")] == [1, 2, 3]
    assert of(resumed, "RunFinished")[-1]["status"] == "finished"


def test_onecycle_refuses_a_different_process_count():
    from tui_trainer.engine.process import resume_for_process_count
    from tui_trainer.errors import UserError

    saved = {"epoch": 1, "world_size": 2, "config": {"batch_size": 32},
             "scheduler_state_dict": {"total_steps": 66}, "step_in_epoch": 0}
    with pytest.raises(UserError, match="onecycle.*resume it with 2"):
        resume_for_process_count(saved, None, None)
    saved["scheduler_state_dict"] = None
    saved["step_in_epoch"], saved["epoch_sums"], saved["loader"] = 5, {"count": 320}, {"skip": 5}
    notices = []
    fitted = resume_for_process_count(saved, None, notices.append)
    assert (fitted["step_in_epoch"], fitted["epoch_sums"], fitted["loader"]["skip"]) == (0, None, 0)
    assert saved["step_in_epoch"] == 5  # the caller's checkpoint is left as it was
    assert len(notices) == 2


def _context(rank: int, world: int = 2):
    from tui_trainer.engine.distributed import DistContext

    return DistContext(rank=rank, world_size=world, local_rank=rank, local_world_size=world, group=None,
                       store=None, timeout=1.0)


def test_an_exchanged_request_vector_acts_the_same_on_every_rank():
    from tui_trainer.engine import distributed as d
    from tui_trainer.engine.control import Control

    def vector(paused=0.0, checkpoint=0.0, lr=1.0, stop0=0, other_stop=None, rates=(0.0, 0.0)):
        v = [0.0] * (d._RATES + 2)
        v[d._PAUSED], v[d._CHECKPOINT], v[d._LR], v[d._STOP0], v[d._INTERVAL] = paused, checkpoint, lr, stop0, 7
        if other_stop:
            v[d._STOPS + d.STOP_REASONS.index(other_stop)] = 1.0
        v[d._RATES:] = rates
        return v

    for rank in (0, 1):
        context, control = _context(rank), Control()
        context._apply(vector(paused=1.0, checkpoint=1.0, lr=0.5, rates=(10.0, 12.0)), control)
        assert control.paused and control.pending
        requests = control.take()
        assert (requests.checkpoint, requests.lr_factor, requests.stop) == (True, 0.5, None)
        assert context._countdown == 7 and context.rank_rates == (10.0, 12.0)
        context._apply(vector(), control)
        assert not control.paused
        # A stop asked for on another rank (torchrun's SIGTERM there) stops this one too; rank
        # 0's own reason wins over the others'.
        context._apply(vector(other_stop="term"), control)
        assert control.stop_reason == "term"
        control = Control()
        context._apply(vector(stop0=1 + d.STOP_REASONS.index("user"), other_stop="term"), control)
        assert control.stop_reason == "user"


def test_rank_throughput_leaves_out_pauses_and_validation():
    context = _context(1)
    context._measure_rate(0.0, 0)
    context._measure_rate(0.5, 500)
    context._measure_rate(0.6, None)  # paused from 0.6 to 10.0
    context._measure_rate(10.0, 600)  # the first step after the pause: left out
    context._measure_rate(10.2, 800)
    assert context._my_rate == 0.0  # 0.7 s measured so far: not yet a full window
    context._measure_rate(30.0, 50)  # a new epoch after validation: left out
    context._measure_rate(30.3, 350)
    assert context._my_rate == pytest.approx(1000.0)  # (500 + 200 + 300) samples / (0.5 + 0.2 + 0.3) s
