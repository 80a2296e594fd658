"""What an event says to a person: one sentence per event, in one place.

The console's events panel (through the reducer's log lines), the headless log and the final
report all print `describe(event).text`, so a run's ending, a stop request or an LR change reads
the same wherever it is shown. Views add only their own framing: the log prefixes warnings and
errors with their level, the panel marks lines by level.

What is not a sentence stays with its view: the log's header block, epoch table rows and report
tables, the panel's bars and charts, and the log's `checkpoint: PATH (kind, epoch N)` record
(the log names a checkpoint by its full path, for copying; the panel by its file name).

No torch, no Textual, no Rich: a pure function of the event.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import events as ev
from . import fmt
from .vocab import Status, StopReason

INFO, GOOD, WARNING, ERROR = "info", "good", "warning", "error"

# What each stop request is about to do, in the words of the view that asked for it.
STOP_SENTENCES = {
    StopReason.USER: "stop requested: finishing the step, then the final report",
    StopReason.SIGNAL: "interrupt received: finishing the step, saving last.pth, then the report "
                       "(interrupt again to exit at once)",
    StopReason.TERM: "terminate received: saving last.pth and exiting",
    StopReason.QUIT: "quit requested: saving last.pth",
    StopReason.HANGUP: "hang-up received: saving last.pth and exiting",
}
# Saved with every epoch (last.pth) and with every new best: a line each would drown the rest.
ROUTINE_CHECKPOINTS = ("last", "best")


@dataclass(frozen=True)
class Line:
    level: str  # info | good | warning | error
    text: str


def describe(event: ev.Event) -> Line | None:
    """The sentence `event` adds to a run's story, or None for events that only move numbers
    (steps, samples, the start of an epoch, an epoch that brought no new best)."""
    sentence = _SENTENCES.get(type(event))
    return sentence(event) if sentence is not None else None


def _run_started(e: ev.RunStarted) -> Line:
    what = "resumed" if e.resumed else "started"
    # the console's header has no line for the training step (the log's has): said here
    return Line(INFO, f"run {what}: {e.dataset} / {e.model} on {e.device}"
                      + (f", from epoch {e.start_epoch}" if e.resumed else "")
                      + (f"; training step {e.training_step}" if e.training_step else ""))


def _epoch_end(e: ev.EpochEnd) -> Line | None:
    if not e.is_best:
        return None
    value = f"val_loss {e.val_loss:.4f}" if e.monitor == "val_loss" else f"val acc {e.val_acc:.2f}%"
    return Line(GOOD, f"new best: {value} at epoch {e.epoch}")


def _early_stop(e: ev.EarlyStopUpdate) -> Line | None:
    if not e.triggered:
        return None
    return Line(WARNING, f"early stopping: {e.monitor} has not improved for {e.counter} epochs "
                         f"(best {fmt.metric(e.best_score)} at epoch {e.best_epoch})")


def _checkpoint(e: ev.CheckpointSaved) -> Line | None:
    if e.kind in ROUTINE_CHECKPOINTS:
        return None
    return Line(INFO, f"saved {e.kind} checkpoint {os.path.basename(e.path)} ({checkpoint_place(e)})")


def checkpoint_place(e: ev.CheckpointSaved) -> str:
    """Where in the run a checkpoint was taken: "epoch 3" or "epoch 3, step 40"."""
    return f"epoch {e.epoch}" + (f", step {e.step}" if e.step else "")


def _lr_changed(e: ev.LrChanged) -> Line:
    return Line(INFO, f"learning rate {fmt.lr(e.old_lr)} -> {fmt.lr(e.new_lr)} ({e.reason}, epoch {e.epoch})")


def _paused(e: ev.Paused) -> Line:
    # step 0 is the boundary before the epoch starts
    if e.step == 0:
        return Line(INFO, f"paused before epoch {e.epoch}")
    return Line(INFO, f"paused at epoch {e.epoch}, step {e.step}")


def _resumed(e: ev.Resumed) -> Line:
    return Line(INFO, f"resumed after {fmt.duration(e.paused_for)}")


def _stop_requested(e: ev.StopRequested) -> Line:
    try:
        text = STOP_SENTENCES[StopReason(e.reason)]
    except ValueError:  # a reason this version does not know (a hand-edited log)
        text = f"stopping ({e.reason})"
    return Line(WARNING, text)


def _notice(e: ev.Notice) -> Line:
    return Line(e.level, e.message)


def _lr_found(e: ev.LrFound) -> Line:
    picked = "valley" if e.valley is not None and e.lr == e.valley else "steepest descent"
    other = e.steepest if picked == "valley" else e.valley
    also = f"; {'steepest descent' if picked == 'valley' else 'valley'} {fmt.lr(other)}" if other is not None else ""
    ended = ", stopped when the loss diverged" if e.stopped_early else ""
    return Line(INFO, f"lr-find: {e.steps_done} of {e.steps} steps from {fmt.lr(e.lr_min)} to {fmt.lr(e.lr_max)}"
                      f"{ended}; training with lr {fmt.lr(e.lr)} ({picked}{also})")


def _report(e: ev.EvaluationReport) -> Line:
    return Line(GOOD, f"final evaluation: accuracy {e.accuracy * 100:.2f}%, weighted F1 {e.f1:.4f}")


def _run_finished(e: ev.RunFinished) -> Line:
    """How the run ended, after how long, and its best epoch. The log ends with it, the events
    panel and the report show it, and the console's terminal gets it once the console closes."""
    status = Status.of_end(e.status)
    best = ""
    if e.best_epoch and e.monitor == "val_loss" and e.best_val_loss is not None:
        best = f"; best val_loss {fmt.metric(e.best_val_loss)} at epoch {e.best_epoch} (val acc {e.best_val_acc:.2f}%)"
    elif e.best_epoch:
        best = f"; best val acc {e.best_val_acc:.2f}% at epoch {e.best_epoch}"
    level = GOOD if status.counts_as_done else WARNING
    took = f"in {fmt.duration(e.elapsed)}"
    if e.start_epoch:  # a resumed run: the time is this session's, not the whole run's
        took = f"({fmt.duration(e.elapsed)} since it resumed after epoch {e.start_epoch})"
    return Line(level, f"run {status.words} after {fmt.plural(e.epochs_completed, 'epoch')} {took}{best}")


def _run_failed(e: ev.RunFailed) -> Line:
    return Line(ERROR, e.error)


_SENTENCES = {
    ev.RunStarted: _run_started,
    ev.EpochEnd: _epoch_end,
    ev.EarlyStopUpdate: _early_stop,
    ev.CheckpointSaved: _checkpoint,
    ev.LrChanged: _lr_changed,
    ev.Paused: _paused,
    ev.Resumed: _resumed,
    ev.StopRequested: _stop_requested,
    ev.Notice: _notice,
    ev.LrFound: _lr_found,
    ev.EvaluationReport: _report,
    ev.RunFinished: _run_finished,
    ev.RunFailed: _run_failed,
}
