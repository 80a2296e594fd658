"""The console driving a real (tiny) training run, built by the same factory as the CLI:
keys reach the engine, and what the engine does shows on screen and on disk."""

import time
from pathlib import Path

import psutil
import pytest
import torch

from tui_trainer import events as ev
from tui_trainer.config import make_config
from tui_trainer.engine.checkpoint import load_run_checkpoint
from tui_trainer.engine.control import Control
from tui_trainer.frontends.tui.launch import build_app, build_trainer_app
from tui_trainer.frontends.tui.widgets.dialogs import QuitScreen
from tui_trainer.runner import execute

from .screen import region_text

pytestmark = pytest.mark.timeout(120)


def tiny_config(run_dir: Path, **overrides):
    # every test here ends its run with keys; 2,000 epochs (minutes) so that a run never ends on
    # its own while a test is still pressing keys (the keys are disabled once it has)
    values = dict(model="mlp", epochs=2000, synthetic_shape=(1, 8, 8), synthetic_train=1024, synthetic_val=256,
                  batch_size=32, seed=0, run_dir=str(run_dir), checkpoint_every=0, patience=0)
    values.update(overrides)
    return make_config("synthetic", **values)


async def wait_until(pilot, condition, timeout: float = 60.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def progress(state):
    return (len(state.epochs_done), state.epoch, state.step)


async def test_pause_halts_the_engine_and_resume_continues(tmp_path):
    events = ev.ListSink()
    app, store, control, _ = build_app(tiny_config(tmp_path / "run"), tmp_path / "run", extra_sinks=[events],
                                       trainer_options={"progress_interval": 0.05})
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: store.snapshot().status == "RUNNING" and store.snapshot().step > 0,
                         what="training to start")
        await pilot.press("p")
        await wait_until(pilot, lambda: store.snapshot().status == "PAUSED", what="PAUSED")
        await pilot.pause(0.2)
        assert "PAUSED" in str(app.query_one("#header-status").render())
        paused_at = progress(store.snapshot())
        steps_before = len(events.of(ev.StepProgress))
        proc = psutil.Process()
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        await pilot.pause(1.0)
        cpu_used = sum(proc.cpu_times()[:2]) - cpu0
        assert progress(store.snapshot()) == paused_at
        assert len(events.of(ev.StepProgress)) == steps_before
        # A paused run waits on a condition variable: the whole process idles.
        assert cpu_used < 0.5 * (time.monotonic() - t0)
        await pilot.press("p")
        await wait_until(pilot, lambda: progress(store.snapshot()) > paused_at, what="progress after resume")
        assert store.snapshot().status == "RUNNING"
        await pilot.press("s")
        await wait_until(pilot, lambda: not store.snapshot().active, what="the run to end")
    resumed = events.of(ev.Resumed)
    assert len(resumed) == 1 and resumed[0].paused_for >= 1.0


async def test_stop_early_shows_the_report_and_saves(tmp_path):
    run_dir = tmp_path / "run"
    app, store, control, _ = build_app(tiny_config(run_dir), run_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: len(store.snapshot().epochs_done) >= 2, what="two epochs")
        await pilot.press("s")
        await wait_until(pilot, lambda: store.snapshot().status == "STOPPED", what="STOPPED")
        await pilot.pause(0.2)
        state = store.snapshot()
        assert state.report is not None and state.report.class_names
        assert app.query_one("ContentSwitcher").current == "report"
        assert app.check_action("pause", ()) is None  # nothing left to pause
        await pilot.press("q")  # no question once the run is over
    assert app.outcome.status == "stopped"
    for name in ("best_model.pth", "last.pth", "report.json", "events.jsonl"):
        assert (run_dir / name).is_file(), name
    saved = load_run_checkpoint(run_dir / "last.pth")
    assert saved["epoch"] >= 2


async def test_quit_leaves_a_resumable_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    config = tiny_config(run_dir)
    app, store, control, _ = build_app(config, run_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: len(store.snapshot().epochs_done) >= 1 and store.snapshot().step > 0,
                         what="an epoch and a few steps")
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("y")
        await wait_until(pilot, lambda: app.outcome is not None, what="the engine to stop")
    assert app.outcome.status == "interrupted"
    assert store.snapshot().status == "INTERRUPTED"
    saved = load_run_checkpoint(run_dir / "last.pth")
    done = saved["epoch"]
    assert done >= 1
    sink = ev.ListSink()
    outcome = execute(config.replace(epochs=done + 2), run_dir, [sink], Control(), resume=True,
                      system_interval=None)
    assert outcome.status == "finished"
    started = sink.of(ev.RunStarted)[0]
    assert started.resumed and started.start_epoch == done
    assert [e.epoch for e in sink.of(ev.EpochEnd)][-1] == done + 2


async def test_lr_keys_change_the_optimizer_lr(tmp_path):
    run_dir = tmp_path / "run"
    events = ev.ListSink()
    config = tiny_config(run_dir, scheduler="none", lr=1e-3)
    app, store, control, _ = build_app(config, run_dir, extra_sinks=[events],
                                       trainer_options={"progress_interval": 0.05})
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: store.snapshot().step > 0, what="training to start")
        await pilot.press("plus")
        await wait_until(pilot, lambda: len(store.snapshot().lr_changes) == 1, what="the LR change")
        # one press at a time: presses that land between the same two steps combine into one
        # change (x0.25 for two halvings; see test_keys_reach_the_control)
        for expected in (2, 3):
            await pilot.press("minus")
            await wait_until(pilot, lambda: len(store.snapshot().lr_changes) == expected, what=f"change {expected}")
        n = len(events.of(ev.StepProgress))
        await wait_until(pilot, lambda: len(events.of(ev.StepProgress)) > n + 1, what="steps at the new LR")
        await pilot.press("s")
        await wait_until(pilot, lambda: not store.snapshot().active, what="the run to end")
    changes = events.of(ev.LrChanged)
    assert [(c.old_lr, c.new_lr, c.reason) for c in changes] == [
        (1e-3, 2e-3, "manual"), (2e-3, 1e-3, "manual"), (1e-3, 5e-4, "manual")]
    assert events.of(ev.StepProgress)[-1].lr == pytest.approx(5e-4)  # read from the optimizer
    saved = load_run_checkpoint(run_dir / "last.pth")
    assert saved["optimizer_state_dict"]["param_groups"][0]["lr"] == pytest.approx(5e-4)
    assert [c["factor"] for c in saved["manual_lr_changes"]] == [2.0, 0.5, 0.5]


async def test_a_users_own_trainer_opens_the_same_console(tmp_path):
    from tui_trainer import EarlyStopping, Trainer, create_scheduler
    from tui_trainer.data.synthetic import make_tensors

    gen = torch.Generator().manual_seed(0)
    x, y = make_tensors((1, 8, 8), 4, 512, gen)
    data = torch.utils.data.TensorDataset(x.float() / 255, y)
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    trainer = Trainer(model, loader, loader, torch.nn.CrossEntropyLoss(), optimizer, "cpu", tmp_path / "ckpt")
    app = build_trainer_app(trainer, 3, create_scheduler(optimizer, "cosine", T_max=3), EarlyStopping(patience=5))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: not app.store.snapshot().active, what="the run to end")
        await pilot.pause(0.2)
        assert app.query_one("ContentSwitcher").current == "report"
    assert app.outcome.status == "finished"
    assert len(trainer.val_accs) == 3
    assert app.store.snapshot().report is not None


async def test_a_failing_run_shows_the_error_and_exits_non_zero(tmp_path, capsys):
    from tui_trainer.frontends.tui.launch import _exit_code

    run_dir = tmp_path / "run"
    config = tiny_config(run_dir, lr=1e12, clip_grad=0.0, scheduler="none")
    app, store, control, _ = build_app(config, run_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: store.snapshot().status == "FAILED", what="FAILED")
        await pilot.pause(0.2)
        assert "FAILED" in str(app.query_one("#header-status").render())
        events_text = region_text(app, app.query_one("#events"))
        assert "non-finite loss at epoch" in events_text
        await pilot.press("q")
    assert _exit_code(app, store) == 1
    assert "non-finite loss at epoch" in capsys.readouterr().err
