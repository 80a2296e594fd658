"""describe(event): each event kind's one sentence, and the same sentence wherever it is shown:
the console's events panel (the reducer's log lines), the headless log and the final report."""

from __future__ import annotations

import io

import pytest

from tui_trainer import events as ev
from tui_trainer.describe import describe
from tui_trainer.frontends.headless import HeadlessPrinter
from tui_trainer.state import RunState, reduce, replay

STARTED = ev.RunStarted(run_name="r", run_dir="runs/r", dataset="digits", model="simplecnn", num_params=1,
                        device="cpu", device_name="cpu", precision="fp32", num_epochs=5, start_epoch=0,
                        steps_per_epoch=10, batch_size=8, accum_steps=1, train_size=80, val_size=20,
                        num_classes=2, class_names=("a", "b"), optimizer="AdamW", lr=1e-3, scheduler="cosine",
                        patience=3, t=0.0)
REPORT = ev.EvaluationReport(split="validation", loss=0.25, accuracy=0.8125, precision=0.8, recall=0.81,
                             f1=0.8053, macro_precision=0.8, macro_recall=0.8, macro_f1=0.8,
                             class_names=("a", "b"), per_class_precision=(0.8, 0.8), per_class_recall=(0.8, 0.8),
                             per_class_f1=(0.8, 0.8), support=(10, 10), confusion_matrix=((8, 2), (2, 8)),
                             best_epoch=3, t=9.0)


def finished(status: str, **values) -> ev.RunFinished:
    fields = dict(status=status, epochs_completed=4, best_epoch=3, best_val_acc=81.25, elapsed=75.0,
                  last_checkpoint="runs/r/last.pth", best_val_loss=0.2468, monitor="val_loss", t=10.0)
    fields.update(values)
    return ev.RunFinished(**fields)


# (event, level, sentence): every kind of event that adds a line to a run's story
SENTENCES = [
    (STARTED, "info", "run started: digits / simplecnn on cpu"),
    (ev.RunStarted(**{**STARTED.__dict__, "resumed": True, "start_epoch": 2}), "info",
     "run resumed: digits / simplecnn on cpu, from epoch 2"),
    # the console has no header line for the training step: its events panel says it
    (ev.RunStarted(**{**STARTED.__dict__, "device": "cuda", "training_step": "eager (--cuda-graphs auto stays "
                      "eager until a GPU run has verified the captured step; --cuda-graphs on tries it "
                      "(experimental))"}), "info",
     "run started: digits / simplecnn on cuda; training step eager (--cuda-graphs auto stays eager until a GPU run "
     "has verified the captured step; --cuda-graphs on tries it (experimental))"),
    (ev.RunStarted(**{**STARTED.__dict__, "device": "cuda",
                      "training_step": "captured as a CUDA graph (--cuda-graphs on, experimental)"}), "info",
     "run started: digits / simplecnn on cuda; training step captured as a CUDA graph (--cuda-graphs on, "
     "experimental)"),
    (ev.EpochEnd(epoch=2, num_epochs=5, train_loss=0.5, train_acc=80.0, val_loss=0.31234, val_acc=85.0, lr=1e-3,
                 epoch_time=1.0, train_time=0.8, val_time=0.2, samples_per_sec=100.0, is_best=True, best_epoch=2,
                 best_val_acc=85.0, monitor="val_loss", t=2.0), "good", "new best: val_loss 0.3123 at epoch 2"),
    (ev.EpochEnd(epoch=2, num_epochs=5, train_loss=0.5, train_acc=80.0, val_loss=0.31, val_acc=85.0, lr=1e-3,
                 epoch_time=1.0, train_time=0.8, val_time=0.2, samples_per_sec=100.0, is_best=True, best_epoch=2,
                 best_val_acc=85.0, monitor="val_acc", t=2.0), "good", "new best: val acc 85.00% at epoch 2"),
    (ev.EarlyStopUpdate(epoch=6, counter=3, patience=3, best_score=0.25, best_epoch=3, min_delta=0.0, triggered=True,
                        t=3.0), "warning", "early stopping: val_loss has not improved for 3 epochs (best 0.2500 at "
                                           "epoch 3)"),
    (ev.CheckpointSaved(epoch=2, kind="periodic", path="runs/r/checkpoint_epoch_2.pth", t=3.1), "info",
     "saved periodic checkpoint checkpoint_epoch_2.pth (epoch 2)"),
    (ev.CheckpointSaved(epoch=3, kind="manual", path="runs/r/last.pth", step=4, t=3.2), "info",
     "saved manual checkpoint last.pth (epoch 3, step 4)"),
    (ev.LrChanged(epoch=3, step=4, old_lr=1e-3, new_lr=5e-4, reason="manual", t=4.0), "info",
     "learning rate 1.00e-03 -> 5.00e-04 (manual, epoch 3)"),
    (ev.Paused(epoch=3, step=4, t=5.0), "info", "paused at epoch 3, step 4"),
    (ev.Paused(epoch=4, step=0, t=5.0), "info", "paused before epoch 4"),
    (ev.Resumed(epoch=3, step=4, paused_for=75.0, t=6.0), "info", "resumed after 1m15s"),
    (ev.StopRequested(reason="user", t=7.0), "warning", "stop requested: finishing the step, then the final report"),
    (ev.StopRequested(reason="signal", t=7.0), "warning", "interrupt received: finishing the step, saving last.pth, "
                                                          "then the report (interrupt again to exit at once)"),
    (ev.StopRequested(reason="term", t=7.0), "warning", "terminate received: saving last.pth and exiting"),
    (ev.StopRequested(reason="quit", t=7.0), "warning", "quit requested: saving last.pth"),
    (ev.StopRequested(reason="made-up", t=7.0), "warning", "stopping (made-up)"),
    (ev.Notice(level="warning", message="the CPU is busy", t=8.0), "warning", "the CPU is busy"),
    (REPORT, "good", "final evaluation: accuracy 81.25%, weighted F1 0.8053"),
    (finished("finished"), "good",
     "run finished after 4 epochs in 1m15s; best val_loss 0.2468 at epoch 3 (val acc 81.25%)"),
    (finished("early_stopped", monitor="val_acc"), "good",
     "run stopped early after 4 epochs in 1m15s; best val acc 81.25% at epoch 3"),
    (finished("stopped", epochs_completed=1, best_epoch=0), "good", "run stopped by the user after 1 epoch in 1m15s"),
    (finished("finished", start_epoch=2), "good",
     "run finished after 4 epochs (1m15s since it resumed after epoch 2); best val_loss 0.2468 at epoch 3 "
     "(val acc 81.25%)"),
    (finished("interrupted"), "warning",
     "run interrupted after 4 epochs in 1m15s; best val_loss 0.2468 at epoch 3 (val acc 81.25%)"),
    (finished("a word from a newer version", best_epoch=0), "warning", "run interrupted after 4 epochs in 1m15s"),
    (ev.RunFailed(error="non-finite loss at epoch 2, step 3; stopping", t=11.0), "error",
     "non-finite loss at epoch 2, step 3; stopping"),
]


@pytest.mark.parametrize("event, level, text", SENTENCES, ids=[f"{type(s[0]).__name__}-{i}" for i, s in
                                                                 enumerate(SENTENCES)])
def test_each_event_kind_has_its_sentence_and_the_events_panel_shows_it(event, level, text):
    line = describe(event)
    assert (line.level, line.text) == (level, text)
    state = reduce(replay([STARTED]), event)
    assert (state.log[-1].level, state.log[-1].text) == (level, text)


@pytest.mark.parametrize("event", [
    ev.StepProgress(epoch=1, step=2, steps=10, samples=16, loss=0.5, acc=50.0, epoch_loss=0.5, epoch_acc=50.0,
                    lr=1e-3, samples_per_sec=10.0, elapsed=1.0),
    ev.EpochStarted(epoch=1, num_epochs=5, steps=10),
    ev.EpochEnd(epoch=2, num_epochs=5, train_loss=0.5, train_acc=80.0, val_loss=0.3, val_acc=85.0, lr=1e-3,
                epoch_time=1.0, train_time=0.8, val_time=0.2, samples_per_sec=100.0, is_best=False, best_epoch=1,
                best_val_acc=86.0),
    ev.EarlyStopUpdate(epoch=2, counter=1, patience=3, best_score=0.25, best_epoch=1, min_delta=0.0),
    ev.CheckpointSaved(epoch=2, kind="last", path="runs/r/last.pth"),
    ev.CheckpointSaved(epoch=2, kind="best", path="runs/r/best_model.pth"),
    ev.Preparing(stage="loading torch"),
])
def test_events_that_only_move_numbers_add_no_line(event):
    assert describe(event) is None
    before = replay([STARTED])
    assert reduce(before, event).log == before.log


def printed(*events) -> list[str]:
    stream = io.StringIO()
    printer = HeadlessPrinter(stream)
    for event in (STARTED, *events):
        printer.emit(event)
    return stream.getvalue().splitlines()


@pytest.mark.parametrize("event, level, text", [s for s in SENTENCES if isinstance(
    s[0], (ev.EarlyStopUpdate, ev.LrChanged, ev.Paused, ev.Resumed, ev.StopRequested, ev.RunFinished))])
def test_the_headless_log_prints_the_same_sentence(event, level, text):
    assert text in printed(event)


def test_the_headless_log_prefixes_warnings_and_errors_with_their_level():
    lines = printed(ev.Notice(level="info", message="said in the console only"),
                    ev.Notice(level="warning", message="the CPU is busy"), ev.RunFailed(error="it broke"))
    assert "warning: the CPU is busy" in lines and "error: it broke" in lines
    assert not any("said in the console only" in line for line in lines)


def plain_palette():
    """The report's colour roles with no colour: only its words are under test here."""
    from types import SimpleNamespace

    from rich.style import Style

    from tui_trainer.frontends.tui.widgets.base import ROLES

    return SimpleNamespace(**{role: Style() for role in ROLES})


@pytest.mark.parametrize("status", ["finished", "early_stopped", "stopped", "interrupted"])
def test_how_a_run_ended_reads_the_same_in_the_panel_the_log_the_report_and_the_terminal(status, capsys):
    from tui_trainer.frontends.tui.launch import print_outcome
    from tui_trainer.frontends.tui.widgets.report import summary_text

    end = finished(status)
    sentence = describe(end).text
    state = replay([STARTED, REPORT, end])
    assert state.log[-1].text == sentence  # the events panel
    assert sentence in printed(REPORT, end)  # the headless log
    assert sentence in summary_text(state, plain_palette()).plain.splitlines()  # the report
    capsys.readouterr()
    print_outcome(state)  # the terminal once the console has closed
    assert capsys.readouterr().out.splitlines()[0] == sentence


def test_a_stopped_run_is_stopped_by_the_user_everywhere():
    """The three spellings this replaced: "run stopped" (panel), "stopped by the user" (log),
    "stopped by you" (report)."""
    from tui_trainer.frontends.tui.widgets.report import summary_text

    state = replay([STARTED, REPORT, finished("stopped")])
    assert "run stopped by the user after 4 epochs" in state.log[-1].text
    assert "stopped by you" not in summary_text(state, plain_palette()).plain
    assert summary_text(state, plain_palette()).plain.count("stopped by the user") == 1


def test_the_state_says_its_status_as_the_badge_does():
    state = replay([STARTED, finished("early_stopped")])
    assert state.status == "EARLY STOPPED" and not state.active
    assert RunState().status == "PREPARING" and RunState().active


def test_a_pause_shows_the_step_it_paused_at():
    """Step progress comes a few times a second: a pause two steps into an epoch must not leave
    the progress bar at step 0 while the events panel says step 2."""
    state = replay([STARTED, ev.EpochStarted(epoch=3, num_epochs=5, steps=23), ev.Paused(epoch=3, step=2)])
    assert state.step == 2 and state.steps == 23
    assert "paused at epoch 3, step 2" in state.log[-1].text
    later = replay([STARTED, ev.EpochStarted(epoch=3, num_epochs=5, steps=23), ev.Paused(epoch=2, step=20)])
    assert later.step == 0  # an older epoch's position does not move this epoch's bar
