"""The scripted scenes the snapshots show carry numbers the program could produce: the model's
real parameter count, early stopping as the engine counts it, the LR the schedule gives."""

from __future__ import annotations

import math

import pytest

from tui_trainer import events as ev
from tui_trainer.frontends.tui.scenes import SCENES
from tui_trainer.state import replay


def test_the_scenes_parameter_count_is_simplecnns_on_cifar_shaped_input():
    from tui_trainer.models.cnn import SimpleCNN

    real = sum(p.numel() for p in SimpleCNN(num_classes=10, in_channels=3).parameters())
    for name, scene in SCENES.items():
        for started in (e for e in scene() if isinstance(e, ev.RunStarted)):
            assert started.num_params == real, name


@pytest.mark.parametrize("name", [n for n in SCENES if n != "preparing"])
def test_early_stopping_counts_as_the_engine_does(name):
    events = SCENES[name]()
    best, best_epoch, counter = math.inf, 0, 0
    patience = next(e for e in events if isinstance(e, ev.RunStarted)).patience
    for event in events:
        if isinstance(event, ev.EpochEnd):
            if event.val_loss < best:
                best, best_epoch, counter = event.val_loss, event.epoch, 0
            else:
                counter += 1
        if isinstance(event, ev.EarlyStopUpdate):
            assert (event.best_epoch, event.counter) == (best_epoch, counter), (name, event.epoch)
            assert event.best_score == best
            assert event.triggered == (counter >= patience)
    state = replay(events)
    if state.status == "EARLY STOPPED":
        assert state.early_stop.counter == patience
        assert state.epochs_done[-1] - state.early_stop.best_epoch == patience


@pytest.mark.parametrize("name", ["running", "paused", "early-stopped"])
def test_the_lr_shown_is_the_planned_lr_times_the_manual_changes(name):
    events = SCENES[name]()
    plan = dict(next(e for e in events if isinstance(e, ev.RunStarted)).lr_plan)
    factor = at_epoch_start = 1.0
    for event in events:
        if isinstance(event, ev.EpochStarted):
            at_epoch_start = factor
        if isinstance(event, ev.LrChanged):
            factor *= event.new_lr / event.old_lr
        if isinstance(event, ev.StepProgress):
            assert event.lr == pytest.approx(plan[float(event.epoch - 1)] * factor), (name, event)
        if isinstance(event, ev.EpochEnd):  # the LR the epoch started with, as the engine reports it
            assert event.lr == pytest.approx(plan[float(event.epoch - 1)] * at_epoch_start), (name, event)
    state = replay(events)
    assert state.lr == pytest.approx(plan[float(state.epoch - 1)] * factor)


@pytest.mark.parametrize("name", [n for n in SCENES if n != "preparing"])
def test_the_best_epoch_is_the_lowest_val_loss_and_every_event_names_it(name):
    """The engine's default: the best epoch has the lowest val_loss (ties: the higher val_acc);
    EpochEnd, EarlyStopUpdate, the report and RunFinished all name that epoch."""
    events = SCENES[name]()
    assert next(e for e in events if isinstance(e, ev.RunStarted)).monitor == "val_loss"
    best = None
    for event in events:
        if isinstance(event, ev.EpochEnd):
            if best is None or (event.val_loss, -event.val_acc) < (best.val_loss, -best.val_acc):
                best = event
            assert event.monitor == "val_loss"
            assert event.is_best == (best is event)
            assert (event.best_epoch, event.best_val_loss, event.best_val_acc) == (best.epoch, best.val_loss,
                                                                                   best.val_acc)
        if isinstance(event, ev.EarlyStopUpdate):
            assert event.best_epoch == best.epoch and event.improved == (best.epoch == event.epoch)
        if isinstance(event, (ev.EvaluationReport, ev.RunFinished)):
            assert event.best_epoch == best.epoch
        if isinstance(event, ev.EvaluationReport):
            assert event.loss == best.val_loss and event.accuracy == pytest.approx(best.val_acc / 100, abs=0.01)


def test_events_of_an_epoch_end_come_in_the_engines_order():
    """A plateau LR change, then EpochEnd, EarlyStopUpdate and the checkpoints (best, periodic,
    last), as engine/loop.py emits them."""
    events = SCENES["stopped"]()
    names = [type(e).__name__ for e in events]
    for i, name in enumerate(names):
        if name == "EpochEnd":
            assert names[i + 1] == "EarlyStopUpdate"
            following = [n for n in names[i + 2:i + 5] if n == "CheckpointSaved"]
            assert following, names[i:i + 5]
    plateau = next(i for i, e in enumerate(events) if isinstance(e, ev.LrChanged) and e.reason == "plateau")
    assert names[plateau - 1] == "ValidationStarted" and names[plateau + 1] == "EpochEnd"
