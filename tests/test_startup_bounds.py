"""Start-up cannot hang: the LR plan the console draws is sampled (a few hundred points, however
long the run), the number of epochs has an upper bound checked before anything starts, and a
stop signal during preparation ends the run within seconds."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from _reliability import has_event, kill_group, spawn, wait_for


def _scheduler(name: str, epochs: int, steps: int):
    import torch

    from tui_trainer.engine.schedulers import scheduler_for_run

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    return scheduler_for_run(optimizer, name, epochs, steps), optimizer


@pytest.mark.parametrize("name, epochs, steps", [("cosine", 1_000_000, 1), ("step", 1_000_000, 1),
                                                 ("warmup_cosine", 1_000_000, 1), ("onecycle", 1000, 1000)])
def test_the_lr_plan_of_a_long_run_is_sampled_not_stepped_through(name, epochs, steps):
    from tui_trainer.engine.schedulers import planned_lrs

    scheduler, optimizer = _scheduler(name, epochs, steps)
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += event in ("call", "c_call")

    sys.setprofile(count)  # work counted in function calls, not seconds: the same on any machine
    try:
        plan = planned_lrs(scheduler, optimizer, epochs, 0, steps)
    finally:
        sys.setprofile(None)
    # the old plan stepped a scheduler once per step: a million steps here, each many calls
    assert calls < 50_000, f"{calls} function calls to plan {epochs * steps:,} steps"
    assert 300 <= len(plan) <= 402
    assert plan[0][0] == 0 and plan[-1][0] == pytest.approx(epochs, rel=1e-3)
    assert all(a[0] < b[0] for a, b in zip(plan, plan[1:]))


def _torch_equivalent(name: str, epochs: int, steps: int):
    """torch's scheduler with the settings the command line's schedule of that name uses."""
    import torch

    from tui_trainer.engine.schedulers import create_scheduler

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    kwargs = {"cosine": {"T_max": epochs}, "step": {"step_size": max(1, round(epochs * 0.3))},
              "multistep": {"milestones": sorted({max(1, round(epochs * f)) for f in (0.3, 0.6, 0.9)})},
              "warmup_cosine": {"T_0": min(10, epochs)}, "onecycle": {"total_steps": epochs * steps}}[name]
    return create_scheduler(optimizer, name, **kwargs), optimizer


@pytest.mark.parametrize("name", ["cosine", "step", "multistep", "warmup_cosine", "onecycle"])
def test_a_sampled_plan_is_the_schedule_the_optimizer_follows(name):
    """Sampled or not, every point of the plan is the LR the optimizer gets at that position, also
    from the middle of a run, and it is torch's schedule of the same name, stepped there."""
    from tui_trainer.engine.learning_rate import LearningRate
    from tui_trainer.engine.train_state import TrainState

    epochs, steps, done = 8000 if name != "onecycle" else 40, 1 if name != "onecycle" else 250, 7
    per_step = name == "onecycle"
    schedule, optimizer = _scheduler(name, epochs, steps)
    lr = LearningRate(optimizer, schedule)
    state = TrainState(epoch=done, global_step=done * steps)
    plan = dict(lr.plan(state, epochs, steps))
    reference, reference_optimizer = _torch_equivalent(name, epochs, steps)
    for _ in range(done * (steps if per_step else 1)):
        reference_optimizer.step()
        reference.step()
    position, compared = float(done), 0
    for _ in range((epochs - done) * (steps if per_step else 1) - (1 if per_step else 0)):
        if per_step:
            state.global_step += 1
        else:
            state.epoch += 1
        lr.apply(state)  # what the loop does after a step (per_step) or an epoch
        reference_optimizer.step()
        reference.step()
        position += 1 / steps if per_step else 1
        assert optimizer.param_groups[0]["lr"] == pytest.approx(reference_optimizer.param_groups[0]["lr"],
                                                                rel=1e-9, abs=1e-15), position
        key = min(plan, key=lambda p: abs(p - position))
        if abs(key - position) < 1e-9:
            assert plan[key] == optimizer.param_groups[0]["lr"], position
            compared += 1
    assert compared >= 300


def test_sigterm_during_preparation_ends_the_run_within_seconds(tmp_path):
    """The longest possible run (1,000,000 epochs of a per-step onecycle schedule) stopped while it
    prepares: the old plan preview stepped a scheduler through every step before training."""
    run_dir = tmp_path / "run"
    proc = spawn(["run", "synthetic", "--model", "mlp", "--synthetic-shape", "3x8x8", "--synthetic-train", "20000",
                  "--synthetic-val", "256", "--batch-size", "16", "--epochs", "1000000", "--scheduler", "onecycle",
                  "--device", "cpu", "--run-dir", run_dir, "--headless"])
    try:
        wait_for(lambda: has_event(run_dir, "Preparing", stage="building model"), 60, "preparation", proc)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        kill_group(proc)
    assert proc.returncode == 143, out + err
    assert took < 10, f"the stop took {took:.1f}s"
    assert "Traceback" not in out + err
    assert has_event(run_dir, "RunFinished", status="interrupted")
