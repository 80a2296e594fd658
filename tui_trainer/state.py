"""RunState: an immutable snapshot of a run, built by a pure reducer from the event stream.

`reduce(state, event) -> state` serves a live run, a replay of `events.jsonl` and scripted
test scenes alike. Durations come from the events' own timestamps, never from a clock, so
the same events always give the same state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable

from . import events as ev
from .describe import describe
from .vocab import Status

STEP_WINDOW = 120  # recent step metrics kept for the sparklines
LOG_LINES = 200  # events-panel lines kept


@dataclass(frozen=True)
class LogLine:
    t: float
    level: str  # info | good | warning | error
    text: str


@dataclass(frozen=True)
class RunState:
    version: int = 0
    run_status: Status = Status.PREPARING
    stage: str = "starting"
    stage_detail: str = ""
    phase: str = ""  # training | validating | evaluating
    info: ev.RunStarted | None = None
    first_t: float | None = None
    started_t: float | None = None
    last_t: float | None = None
    # progress
    epoch: int = 0
    num_epochs: int = 0
    step: int = 0
    steps: int = 0
    samples: int = 0
    epoch_loss: float | None = None
    epoch_acc: float | None = None
    lr: float | None = None
    samples_per_sec: float | None = None
    skipped: int = 0
    step_losses: tuple[float, ...] = ()
    step_accs: tuple[float, ...] = ()
    # per-epoch history
    epochs_done: tuple[int, ...] = ()
    train_loss: tuple[float, ...] = ()
    train_acc: tuple[float, ...] = ()
    val_loss: tuple[float, ...] = ()
    val_acc: tuple[float, ...] = ()
    epoch_lrs: tuple[float, ...] = ()
    train_time_total: float = 0.0
    val_time_total: float = 0.0
    best_epoch: int = 0
    best_val_acc: float | None = None
    restored_epochs: int = 0  # epochs a resumed run did before (from RunStarted), not timed here
    # learning rate
    lr_plan: tuple[tuple[float, float], ...] = ()
    lr_changes: tuple[tuple[float, float, str], ...] = ()  # (epoch position, new lr, reason)
    # early stopping, system, checkpoints
    early_stop: ev.EarlyStopUpdate | None = None
    system: ev.SystemSample | None = None
    last_checkpoint: str = ""
    checkpoints_saved: int = 0
    last_manual_save: ev.CheckpointSaved | None = None  # the newest save asked for with `c`
    # pauses (seconds of wall time excluded from elapsed and ETA)
    paused_since: float | None = None
    paused_total: float = 0.0
    # the end
    report: ev.EvaluationReport | None = None
    end: ev.RunFinished | None = None
    error: str = ""
    log: tuple[LogLine, ...] = ()

    # ----- derived values (pure functions of the state) -----
    @property
    def status(self) -> str:
        """As the status badge shows it: RUNNING, EARLY STOPPED."""
        return self.run_status.label

    @property
    def active(self) -> bool:
        return self.run_status.active

    @property
    def elapsed(self) -> float:
        """Seconds since the run started, pauses excluded."""
        if self.started_t is None or self.last_t is None:
            return 0.0
        paused = self.paused_total
        if self.paused_since is not None:
            paused += self.last_t - self.paused_since
        return max(0.0, self.last_t - self.started_t - paused)

    @property
    def eta(self) -> float | None:
        """Seconds left: remaining training samples at the measured rate, plus validation."""
        if not self.active or not self.samples_per_sec or self.info is None:
            return None
        info = self.info
        per_epoch_samples = min(info.train_size, self.steps * info.batch_size) if self.steps else info.train_size
        epochs_left_after_this = max(0, self.num_epochs - max(self.epoch, 1))
        samples_left = max(0, per_epoch_samples - self.samples) + epochs_left_after_this * per_epoch_samples
        done_epochs = len(self.epochs_done) - self.restored_epochs
        val_each = self.val_time_total / done_epochs if done_epochs else 0.0
        return samples_left / self.samples_per_sec + val_each * (epochs_left_after_this + 1)

    @property
    def progress(self) -> float:
        """Fraction of the whole run done, 0..1."""
        if not self.num_epochs:
            return 0.0
        within = (self.step / self.steps) if self.steps else 0.0
        done = max(0, self.epoch - 1) + within
        if len(self.epochs_done) and self.epochs_done[-1] >= self.epoch:
            done = self.epoch
        return min(1.0, done / self.num_epochs)


def _log(state: RunState, event: ev.Event) -> tuple[LogLine, ...]:
    """The events panel's lines after `event`: its sentence appended, if it has one."""
    line = describe(event)
    if line is None:
        return state.log
    return (state.log + (LogLine(event.t, line.level, line.text),))[-LOG_LINES:]


def _epoch_position(state: RunState, epoch: int, step: int) -> float:
    steps = state.steps or 1
    return max(0.0, epoch - 1 + min(step, steps) / steps)


def reduce(state: RunState, event: ev.Event) -> RunState:
    """Return the state after `event`. Pure: the same inputs always give the same output."""
    r = dataclasses.replace
    t = event.t
    base = {"version": state.version + 1, "last_t": t}
    if state.first_t is None:
        base["first_t"] = t

    if isinstance(event, ev.Preparing):
        return r(state, **base, stage=event.stage, stage_detail=event.detail)

    if isinstance(event, ev.RunStarted):
        return r(state, **base, run_status=Status.RUNNING, stage="running", info=event, started_t=t,
                 epoch=event.start_epoch, num_epochs=event.num_epochs,
                 steps=event.steps_per_epoch, lr=event.lr, lr_plan=event.lr_plan,
                 report=None, end=None, error="", paused_since=None, **_history(state, event),
                 log=_log(state, event))

    if isinstance(event, ev.EpochStarted):
        return r(state, **base, epoch=event.epoch, num_epochs=event.num_epochs, steps=event.steps,
                 step=0, samples=0, epoch_loss=None, epoch_acc=None, phase="training", skipped=0)

    if isinstance(event, ev.StepProgress):
        return r(state, **base, epoch=event.epoch, step=event.step, steps=event.steps,
                 samples=event.samples, epoch_loss=event.epoch_loss, epoch_acc=event.epoch_acc,
                 lr=event.lr, samples_per_sec=event.samples_per_sec or state.samples_per_sec,
                 skipped=event.skipped, phase="training",
                 step_losses=(state.step_losses + (event.loss,))[-STEP_WINDOW:],
                 step_accs=(state.step_accs + (event.acc,))[-STEP_WINDOW:])

    if isinstance(event, ev.ValidationStarted):
        return r(state, **base, phase="validating", step=state.steps)

    if isinstance(event, ev.EpochEnd):
        changes = dict(
            epoch=event.epoch, step=state.steps,
            epochs_done=state.epochs_done + (event.epoch,),
            train_loss=state.train_loss + (event.train_loss,),
            train_acc=state.train_acc + (event.train_acc,),
            val_loss=state.val_loss + (event.val_loss,),
            val_acc=state.val_acc + (event.val_acc,),
            epoch_lrs=state.epoch_lrs + (event.lr,),
            train_time_total=state.train_time_total + event.train_time,
            val_time_total=state.val_time_total + event.val_time,
            best_epoch=event.best_epoch, best_val_acc=event.best_val_acc,
            phase="", skipped=event.skipped,
        )
        if event.samples_per_sec:
            changes["samples_per_sec"] = event.samples_per_sec
        return r(state, **base, **changes, log=_log(state, event))

    if isinstance(event, ev.EarlyStopUpdate):
        return r(state, **base, early_stop=event, log=_log(state, event))

    if isinstance(event, ev.CheckpointSaved):
        manual = event if event.kind == "manual" else state.last_manual_save
        return r(state, **base, last_checkpoint=event.path, last_manual_save=manual,
                 checkpoints_saved=state.checkpoints_saved + 1, log=_log(state, event))

    if isinstance(event, ev.LrChanged):
        pos = _epoch_position(state, event.epoch, event.step)
        plan = state.lr_plan
        if event.reason == "manual" and event.old_lr > 0:
            plan = scale_plan_from(plan, pos, event.new_lr / event.old_lr)
        return r(state, **base, lr=event.new_lr, lr_plan=plan,
                 lr_changes=state.lr_changes + ((pos, event.new_lr, event.reason),), log=_log(state, event))

    if isinstance(event, ev.Paused):
        # the step it paused at (the last step progress may be from before it: it comes a few times a second)
        step = event.step if event.epoch == state.epoch and event.step > state.step else state.step
        return r(state, **base, run_status=Status.PAUSED, paused_since=t, step=step, log=_log(state, event))

    if isinstance(event, ev.Resumed):
        paused_total = state.paused_total + (t - state.paused_since if state.paused_since is not None else 0.0)
        status = Status.RUNNING if state.run_status is Status.PAUSED else state.run_status
        return r(state, **base, run_status=status, paused_since=None, paused_total=paused_total,
                 log=_log(state, event))

    if isinstance(event, ev.StopRequested):
        return r(state, **base, run_status=Status.STOPPING, **_close_pause(state, t), log=_log(state, event))

    if isinstance(event, (ev.Notice, ev.LrFound)):
        return r(state, **base, log=_log(state, event))

    if isinstance(event, ev.SystemSample):
        return r(state, **base, system=event)

    if isinstance(event, ev.EvaluationReport):
        return r(state, **base, report=event, phase="", log=_log(state, event))

    if isinstance(event, ev.RunFinished):
        return r(state, **base, run_status=Status.of_end(event.status), end=event, phase="",
                 **_close_pause(state, t), log=_log(state, event))

    if isinstance(event, ev.RunFailed):
        return r(state, **base, run_status=Status.FAILED, error=event.error, phase="", **_close_pause(state, t),
                 log=_log(state, event))

    return r(state, **base)


def _history(state: RunState, event: ev.RunStarted) -> dict:
    """The per-epoch history a run starts from: none for a new run; for a resumed run the epochs
    before the resume, as its checkpoint recorded them (replacing what a replay of the earlier
    part of the log gathered, which may hold an epoch the checkpoint does not)."""
    if event.resumed and event.start_epoch and not event.history_val_loss:
        return {}  # a log written before RunStarted carried the history: keep what the replay has
    n = len(event.history_val_loss)
    early_stop = None
    if n and event.patience:
        monitored = event.best_val_acc if event.monitor == "val_acc" else event.best_val_loss
        early_stop = ev.EarlyStopUpdate(epoch=n, counter=event.early_stop_counter, patience=event.patience,
                                        best_score=monitored, best_epoch=event.best_epoch,
                                        min_delta=event.min_delta, monitor=event.monitor, t=event.t)
    return dict(epochs_done=tuple(range(1, n + 1)), train_loss=event.history_train_loss,
                train_acc=event.history_train_acc, val_loss=event.history_val_loss, val_acc=event.history_val_acc,
                epoch_lrs=event.history_lr, best_epoch=event.best_epoch, best_val_acc=event.best_val_acc,
                lr_changes=event.lr_changes, early_stop=early_stop, restored_epochs=n,
                train_time_total=0.0, val_time_total=0.0)


def scale_plan_from(plan: tuple[tuple[float, float], ...], pos: float,
                    factor: float) -> tuple[tuple[float, float], ...]:
    """The planned LR after a manual change at epoch position `pos`: the engine multiplies the
    scheduler's base LRs by `factor`, so from `pos` on every planned value is `factor` times
    what it was. The plan gains a vertical step at `pos`; what lies before stays as planned."""
    if not plan or pos > plan[-1][0]:
        return plan
    before = tuple(p for p in plan if p[0] < pos)
    at = tuple(p for p in plan if p[0] == pos)
    later = tuple((x, lr * factor) for x, lr in plan if x > pos)
    # the LR in force at `pos`: the last planned point at or before it (an LR holds until the next)
    current = (at or before)[-1][1] if (at or before) else plan[0][1]
    return before + at[:-1] + ((pos, current), (pos, current * factor)) + later


def _close_pause(state: RunState, t: float) -> dict:
    if state.paused_since is None:
        return {}
    return {"paused_since": None, "paused_total": state.paused_total + (t - state.paused_since)}


def replay(events: Iterable[ev.Event], state: RunState | None = None) -> RunState:
    state = state or RunState()
    for event in events:
        state = reduce(state, event)
    return state
