"""Headless signals and exits, in real processes: the first SIGINT stops gracefully (finish the
step, save last.pth, write the report, exit 130), a second exits at once; SIGTERM saves and
exits 143; SIGHUP (the SSH session ended) saves and exits 129. An exception in the engine keeps
the last good checkpoint and exits 1 with the error in the log."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from _reliability import (cli_main, has_event, kill_group, load, of, one_thread, spawn, temporaries, tiny_run_args,
                          wait_for)

STEPS_PER_EPOCH = 20_000 // 32


def _args(run_dir, shape: str = "3x8x8") -> list:
    # Epochs long enough (625 steps) that a signal lands mid-epoch and a late stop would show.
    return ["run", "synthetic", "--model", "mlp", "--synthetic-shape", shape, "--synthetic-train", "20000",
            "--synthetic-val", "500", "--batch-size", "32", "--epochs", "3", "--device", "cpu",
            "--run-dir", run_dir, "--headless"]


def _saving_last(run_dir) -> bool:
    return any(name.startswith(".last.pth.tmp-") for name in os.listdir(run_dir))


def _scenario(run_dir, signals: list[int], shape: str = "3x8x8") -> dict:
    """Start a run, signal it early in epoch 2 (after epoch 1's checkpoint), and watch it end.
    A second signal, if any, goes while the first one's stop is under way: during its save of
    last.pth (its temporary file exists)."""
    proc = spawn(_args(run_dir, shape))
    try:
        wait_for(lambda: has_event(run_dir, "CheckpointSaved", epoch=1, kind="last"), 120, "epoch 1's last.pth", proc)
        proc.send_signal(signals[0])
        sent = time.monotonic()
        if len(signals) > 1:
            wait_for(lambda: _saving_last(run_dir), 30, "the stop's save to begin", proc, poll=0.0005)
            proc.send_signal(signals[1])
            sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        kill_group(proc)
    return {"code": proc.returncode, "out": out, "err": err, "took": took, "run_dir": run_dir}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """The four scenarios side by side (each is mostly waiting for its child)."""
    base = tmp_path_factory.mktemp("signals")
    plans = {
        "sigint": ([signal.SIGINT], "3x8x8"),
        "sigterm": ([signal.SIGTERM], "3x8x8"),
        "sighup": ([signal.SIGHUP], "3x8x8"),
        # Larger inputs make a checkpoint (~10 MB) take long enough to write that a second signal
        # lands during the first one's save.
        "sigint-twice": ([signal.SIGINT, signal.SIGINT], "3x32x32"),
    }
    with ThreadPoolExecutor(len(plans)) as pool:
        futures = {name: pool.submit(_scenario, base / name, sigs, shape) for name, (sigs, shape) in plans.items()}
        return {name: f.result() for name, f in futures.items()}


def _no_traceback(result) -> None:
    assert "Traceback" not in result["out"] + result["err"], result["err"]


def _stopped_mid_epoch_2(run_dir) -> dict:
    saved = load(run_dir / "last.pth")
    assert saved["epoch"] == 1 and 0 < saved["step_in_epoch"] < STEPS_PER_EPOCH  # the step, not the epoch
    return saved


def test_first_sigint_finishes_the_step_saves_reports_and_exits_130(outcomes):
    result = outcomes["sigint"]
    run_dir = result["run_dir"]
    assert result["code"] == 130, result["out"][-2000:] + result["err"]
    _no_traceback(result)
    assert result["took"] < 10, "the run should end within a few seconds of the signal"
    assert "interrupt received: finishing the step, saving last.pth, then the report" in result["out"]
    assert f"resume with: tui-trainer resume {run_dir}" in result["out"]
    _stopped_mid_epoch_2(run_dir)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "interrupted" and report["epochs_completed"] == 1
    assert [e.status for e in of(run_dir, "RunFinished")] == ["interrupted"]
    assert [e.reason for e in of(run_dir, "StopRequested")] == ["signal"]


def test_sigterm_saves_and_exits_143(outcomes):
    result = outcomes["sigterm"]
    run_dir = result["run_dir"]
    assert result["code"] == 143, result["out"][-2000:] + result["err"]
    _no_traceback(result)
    assert result["took"] < 10
    assert "terminate received: saving last.pth and exiting" in result["out"]
    _stopped_mid_epoch_2(run_dir)
    assert not (run_dir / "report.json").exists()  # no final evaluation: the system wants us gone
    assert [e.status for e in of(run_dir, "RunFinished")] == ["interrupted"]


def test_sighup_saves_and_exits_129(outcomes):
    result = outcomes["sighup"]
    assert result["code"] == 129, result["out"][-2000:] + result["err"]
    _no_traceback(result)
    assert result["took"] < 10
    _stopped_mid_epoch_2(result["run_dir"])
    assert [e.status for e in of(result["run_dir"], "RunFinished")] == ["interrupted"]


def test_second_sigint_exits_at_once(outcomes):
    result = outcomes["sigint-twice"]
    run_dir = result["run_dir"]
    assert result["code"] == 130, result["out"][-2000:] + result["err"]
    _no_traceback(result)
    assert result["took"] < 5, "the second interrupt must not wait for the report"
    # It left during the graceful stop without finishing it: no report, and the save it
    # interrupted was completed first (the process never exits with a write in flight).
    assert not (run_dir / "report.json").exists()
    assert of(run_dir, "EvaluationReport") == [] and of(run_dir, "RunFinished") == []
    _stopped_mid_epoch_2(run_dir)  # what the first interrupt saved is intact
    assert temporaries(run_dir) == []


def test_an_engine_exception_keeps_the_last_checkpoint_and_exits_1(tmp_path, monkeypatch):
    """Say the GPU runs out of memory in epoch 2: the error is in the log (stdout and
    events.jsonl), epoch 1's checkpoint is intact, and the exit code is 1."""
    import torch

    from tui_trainer import models

    real_build = models.build_model
    calls = {"n": 0}

    def build(name, shape, classes):
        model = real_build(name, shape, classes)

        def forward_hook(module, args):
            if module.training:
                calls["n"] += 1
                if calls["n"] == 16 + 5:  # epoch 2, step 5 (16 steps an epoch)
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        model.register_forward_pre_hook(forward_hook)
        return model

    monkeypatch.setattr(models, "build_model", build)
    run_dir = tmp_path / "run"
    with one_thread():
        code, out, err = cli_main(tiny_run_args(run_dir, 3, "--accum-steps", "1"))
    assert code == 1, out + err
    assert "error: OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" in out
    assert f"last good checkpoint: {run_dir / 'last.pth'}" in out
    assert err == ""  # said once, in the log
    (failed,) = of(run_dir, "RunFailed")
    assert "CUDA out of memory" in failed.error and failed.epoch == 2
    assert load(run_dir / "last.pth")["epoch"] == 1
    assert not (run_dir / "report.json").exists()
