"""One monitored metric decides the best epoch: best_model.pth, early stopping, the weights
restored by early stopping and by the stop key, the final evaluation, and every line, event and
file that names "the best epoch". val_loss by default (as the seed's early stopping), val_acc on
request; ties go to the better value of the other metric."""

from __future__ import annotations

import json
import re

import pytest
import torch

from tui_trainer import events as ev
from tui_trainer.data.loader import TensorLoader
from tui_trainer.engine import EarlyStopping, Trainer
from tui_trainer.state import replay

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CE = torch.nn.CrossEntropyLoss


@pytest.fixture
def data():
    """Three separable classes, two validation samples mislabelled: a model that classifies by
    the centres gets 28/30 right, and the more confident it is, the higher its loss."""
    g = torch.Generator().manual_seed(5)
    centres = torch.tensor([[6.0, 0.0], [-6.0, 6.0], [-6.0, -6.0]])
    y = torch.arange(45) % 3
    x = centres[y] + torch.randn(45, 2, generator=g)
    vy = torch.arange(30) % 3
    vx = centres[vy] + torch.randn(30, 2, generator=g)
    vy[0], vy[1] = 1, 2
    good = {"weight": centres / 6, "bias": torch.zeros(3)}
    return x, y, vx, vy, good


def scaled(state: dict, factor: float) -> dict:
    return {k: v * factor for k, v in state.items()}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in b)


def run(tmp_path, data, scripted_optimizer, states, *, monitor=None, early=None, stop_after=None):
    x, y, vx, vy, _ = data
    model = torch.nn.Linear(2, 3)
    sink = ev.ListSink()
    trainer = Trainer(model, TensorLoader(x, y, 64), TensorLoader(vx, vy, 30), CE(),
                      scripted_optimizer(model, states), "cpu", tmp_path, sinks=[sink], monitor=monitor)

    class StopKey:  # the `s` key, pressed when epoch `stop_after` ends
        def emit(self, event):
            if isinstance(event, ev.EpochEnd) and event.epoch == stop_after:
                trainer.control.request_stop("user")

    trainer.events.add(StopKey())
    trainer.fit(len(states), early_stopping=early)
    return trainer, model, sink


def best_epochs_named(sink: ev.ListSink, run_dir) -> dict:
    """Every place a user reads "the best epoch"."""
    report = json.loads((run_dir / "report.json").read_text())
    named = {
        "last EpochEnd": sink.of(ev.EpochEnd)[-1].best_epoch,
        "EvaluationReport": sink.of(ev.EvaluationReport)[0].best_epoch,
        "RunFinished": sink.of(ev.RunFinished)[0].best_epoch,
        "report.json": report["best_epoch"],
        "best_model.pth": torch.load(run_dir / "best_model.pth", weights_only=True)["epoch"],
        "console state": replay(sink.events).best_epoch,
    }
    if sink.of(ev.EarlyStopUpdate):
        named["EarlyStopUpdate"] = sink.of(ev.EarlyStopUpdate)[-1].best_epoch
    return named


def test_by_default_the_lowest_val_loss_is_the_best_epoch_everywhere(tmp_path, data, scripted_optimizer):
    _, _, _, _, good = data
    # epoch 1: one class for everything (30%, loss ln 3 = 1.10); 2: overconfident (93%, loss 1.41);
    # 3: cautious (93%, loss 0.36); 4: everything wrong. The first of the accuracy ties (epoch 2)
    # is not the best: its loss is the highest of all.
    states = [scaled(good, 0.0), scaled(good, 2.0), scaled(good, 0.5), scaled(good, -1.0)]
    trainer, model, sink = run(tmp_path, data, scripted_optimizer, states, early=EarlyStopping(patience=5))
    losses = [e.val_loss for e in sink.of(ev.EpochEnd)]
    assert losses.index(min(losses)) == 2  # epoch 3
    assert set(best_epochs_named(sink, tmp_path).values()) == {3}
    assert [e.epoch for e in sink.of(ev.EpochEnd) if e.is_best] == [1, 3]
    assert same(model.state_dict(), states[2])  # the final evaluation ran on epoch 3's weights
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["monitor"] == "val_loss" and report["best_val_loss"] == pytest.approx(losses[2])
    assert sink.of(ev.RunFinished)[0].monitor == "val_loss"


def test_equal_accuracies_go_to_the_lower_loss_and_the_stop_key_restores_that_epoch(tmp_path, data,
                                                                                    scripted_optimizer):
    """The issue's synthetic run: epochs tied on accuracy, the later ones with a far lower loss;
    `s` must not restore the first of them."""
    _, _, _, _, good = data
    states = [good, scaled(good, 0.5), scaled(good, 2.0), scaled(good, 2.0), scaled(good, 2.0)]
    trainer, model, sink = run(tmp_path, data, scripted_optimizer, states, monitor="val_acc", stop_after=3)
    ends = sink.of(ev.EpochEnd)
    assert len({e.val_acc for e in ends}) == 1  # all tied on accuracy
    assert sink.of(ev.RunFinished)[0].status == "stopped"
    assert set(best_epochs_named(sink, tmp_path).values()) == {2}
    assert same(model.state_dict(), states[1])


def test_early_stopping_on_val_acc_restores_the_same_epoch_the_report_names(tmp_path, data, scripted_optimizer):
    _, _, _, _, good = data
    states = [scaled(good, 0.0), scaled(good, 2.0), good, scaled(good, 0.5), scaled(good, -1.0),
              scaled(good, -1.0), scaled(good, -1.0)]
    restored = {}

    class AtTrigger:
        def emit(self, event):
            if isinstance(event, ev.EarlyStopUpdate) and event.triggered:
                restored.update(model.state_dict())

    x, y, vx, vy, _ = data
    model = torch.nn.Linear(2, 3)
    sink = ev.ListSink()
    trainer = Trainer(model, TensorLoader(x, y, 64), TensorLoader(vx, vy, 30), CE(),
                      scripted_optimizer(model, states), "cpu", tmp_path, sinks=[sink, AtTrigger()])
    trainer.fit(len(states), early_stopping=EarlyStopping(patience=2, monitor="val_acc"))
    updates = sink.of(ev.EarlyStopUpdate)
    assert updates[-1].triggered and {u.monitor for u in updates} == {"val_acc"}
    # epochs 2-4 tie at 93%, each with a lower loss than the one before; 5 and 6 do not improve
    assert [u.improved for u in updates] == [True, True, True, True, False, False]
    assert set(best_epochs_named(sink, tmp_path).values()) == {4}
    assert same(restored, states[3]) and same(model.state_dict(), states[3])


def test_the_monitor_is_one_choice_for_the_trainer_and_its_early_stopping(data, scripted_optimizer):
    x, y, vx, vy, good = data
    model = torch.nn.Linear(2, 3)
    trainer = Trainer(model, TensorLoader(x, y, 64), TensorLoader(vx, vy, 30), CE(),
                      scripted_optimizer(model, [good]), "cpu", None, monitor="val_loss")
    with pytest.raises(ValueError, match="one metric decides both"):
        trainer.fit(1, early_stopping=EarlyStopping(monitor="val_acc"))
    with pytest.raises(ValueError, match="monitor must be one of"):
        Trainer(model, TensorLoader(x, y, 64), TensorLoader(vx, vy, 30), CE(), torch.optim.SGD(model.parameters()),
                "cpu", None, monitor="accuracy")
    es = EarlyStopping(mode="max")  # the seed's way of saying "higher is better"
    assert es.monitor == "val_acc"


def test_cli_monitor_flag_and_every_log_line_names_the_same_epoch(cli, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("run", "synthetic", "--model", "mlp", "--synthetic-shape", "1x4x4", "--synthetic-train", "256",
                 "--synthetic-val", "64", "--epochs", "6", "--lr", "0.01", "--device", "cpu", "--headless",
                 "--monitor", "val_acc", "--patience", "3", "--run-dir", run_dir)
    assert result.code == 0, result.err
    out = result.out
    assert "early stop patience 3 on val_acc" in out
    marked = [int(m) for m in re.findall(r"^\s+(\d+)/6 .*\* best", out, re.M)]
    best = marked[-1]
    assert f"final evaluation (best model, epoch {best})" in out
    assert re.search(rf"best val acc [\d.]+% at epoch {best}$", out, re.M)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["best_epoch"] == best and report["monitor"] == "val_acc"
    from tui_trainer.events import read_events

    events = read_events(run_dir / "events.jsonl")
    assert {e.best_epoch for e in events if isinstance(e, ev.EarlyStopUpdate)} <= set(marked)
    assert [e for e in events if isinstance(e, ev.EarlyStopUpdate)][-1].best_epoch == best
    assert json.loads((run_dir / "config.json").read_text())["monitor"] == "val_acc"


def test_an_unknown_monitor_is_refused_in_one_line(cli, tmp_path):
    result = cli("run", "digits", "--monitor", "accuracy", "--run-dir", tmp_path / "run")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "val_loss, val_acc" in result.err and not (tmp_path / "run").exists()


def test_logs_written_before_the_monitor_existed_still_load():
    old = ('{"event":"EpochEnd","t":1.0,"epoch":1,"num_epochs":2,"train_loss":0.5,"train_acc":80.0,'
           '"val_loss":0.4,"val_acc":85.0,"lr":0.001,"epoch_time":1.0,"train_time":0.8,"val_time":0.2,'
           '"samples_per_sec":100.0,"is_best":true,"best_epoch":1,"best_val_acc":85.0,"skipped":0}')
    event = ev.from_json(old)
    assert event.monitor == "val_acc" and event.best_val_loss is None  # what chose it back then
    state = replay([event])
    assert state.best_epoch == 1 and "new best: val acc 85.00% at epoch 1" in state.log[-1].text
