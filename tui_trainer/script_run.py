"""A Trainer run from the user's own script (`Trainer.train()`), with what `tui-trainer run`
gives a run: a view, stop signals, and a run directory - all through a Session (session.py).

- The view: the plain log, the live console (`ui="tui"`, only where there is a terminal: in a
  pipe, a file or under a job scheduler the plain log is printed instead, as the command line
  does) or nothing (`ui="none"`).
- Stop signals: SIGTERM, SIGHUP and Ctrl-C save last.pth, say so, and raise TrainingInterrupted,
  a SystemExit carrying the command line's exit code (143, 129, 130).
- The run directory (the Trainer's save_dir): config.json (what a script's run can record),
  events.jsonl, the checkpoints and report.json, so `tui-trainer show DIR` replays it.

The engine knows none of this; the public `Trainer.train` (trainer.py) hands over to
`train_from_script`.
"""

from __future__ import annotations

import json
import sys

from . import events as ev
from . import runlog
from .errors import TrainingInterrupted
from .session import Job, Session

UIS = (None, "headless", "none", "tui")
CREATED_BY = "tui_trainer.Trainer"  # config.json of a script's run: `tui-trainer resume` cannot rebuild it


def resume_hint(run_dir: str) -> str:
    return f'trainer.train(..., resume_from="{run_dir}")'


def fit_job(trainer, num_epochs: int, scheduler=None, early_stopping=None) -> Job:
    """The job of a script's run: the Trainer's own fit (its sinks already hold the session's)."""
    def job(sinks, control):
        from .runner import Outcome

        trainer.fit(num_epochs, scheduler, early_stopping)
        return Outcome(trainer.status)

    return job


def train_from_script(trainer, num_epochs: int, scheduler=None, early_stopping=None, ui: str | None = None,
                      resume_from=None):
    if ui not in UIS:
        raise ValueError("ui must be None, 'tui', 'headless' or 'none'")
    from .frontends import terminal_available

    console = ui == "tui" and terminal_available()
    if ui == "tui" and not console:
        ui = "headless"  # no terminal to draw on: the plain log, as the command line does
    printer = None
    if trainer.is_main and not console and (ui == "headless" or (ui is None and not trainer.events.sinks)):
        from .frontends.headless import HeadlessPrinter

        printer = HeadlessPrinter(resume_hint=resume_hint)
    if resume_from is not None:
        _load_checkpoint(trainer, resume_from, scheduler, early_stopping)
    session, replaced = _open_session(trainer, num_epochs, scheduler, early_stopping, fresh=resume_from is None)
    if printer is not None:
        session.add_view(printer)
    trainer.events.add(session.sinks)
    job = fit_job(trainer, num_epochs, scheduler, early_stopping)
    try:
        if replaced:
            trainer.emit(ev.Notice(level="warning", message=f"{trainer.save_dir} held an earlier run; "
                                                            "this run's files replace its files"))
        if console:
            from .frontends.tui.launch import train_in_tui

            train_in_tui(session, job)
        else:
            session.run(job)  # what fit raises reaches the script as it is
    finally:
        trainer.events.sinks.remove(session.sinks)
        session.close()
    if session.error is not None:  # raised on the console's engine thread
        raise RuntimeError(f"{type(session.error).__name__}: {session.error}") from session.error
    stop = session.interruption
    if stop is not None:
        checkpoint = _last_checkpoint(trainer)
        if console:  # the console has closed: say on the terminal what the log would have said
            saved = f"; saved {checkpoint}; resume with {resume_hint(str(trainer.save_dir))}" if checkpoint else ""
            print(f"tui-trainer: interrupted ({stop.name}){saved}", file=sys.stderr)
        raise TrainingInterrupted(stop.exit_code, stop.name, checkpoint)
    return trainer.train_losses, trainer.train_accs, trainer.val_losses, trainer.val_accs


def _last_checkpoint(trainer) -> str:
    if trainer.save_dir is None:
        return ""
    last = trainer.save_dir / "last.pth"
    return str(last) if last.exists() else ""


def _load_checkpoint(trainer, run_dir, scheduler, early_stopping) -> None:
    """Continue from the newest valid checkpoint in `run_dir` (the scheduler and early stopping
    given to train() get their saved state too)."""
    from .engine.checkpoint import find_resumable

    path, saved, problems = find_resumable(run_dir, map_location=trainer.device)
    trainer.scheduler, trainer.early_stopping = scheduler, early_stopping
    trainer.load_state_dict(saved)
    for problem in problems:
        trainer.emit(ev.Notice(level="warning", message=problem))


def _open_session(trainer, num_epochs: int, scheduler, early_stopping, fresh: bool) -> tuple[Session, bool]:
    """The session of a script's run, holding its save_dir for the run: locked against other
    processes, config.json written, events.jsonl open. Returns (session, whether the directory
    held an earlier run whose files this one replaces)."""
    save_dir = trainer.save_dir
    if save_dir is None or not trainer.is_main:
        return Session(control=trainer.control), False
    save_dir.mkdir(parents=True, exist_ok=True)
    lock = runlog.RunDirLock(save_dir).acquire()  # UserError if another process writes there
    events = save_dir / runlog.EVENTS_NAME
    replaced = fresh and (events.exists() or (save_dir / "last.pth").exists())
    try:
        if fresh:
            events.unlink(missing_ok=True)  # a new run starts a new log (unlink never follows a link)
        runlog.write_json_atomic(save_dir / runlog.CONFIG_NAME,
                                 recorded_config(trainer, num_epochs, scheduler, early_stopping))
    except BaseException:
        lock.release()
        raise
    return Session(save_dir, lock=lock, control=trainer.control), replaced  # it releases the lock


def recorded_config(trainer, num_epochs: int, scheduler, early_stopping) -> dict:
    """What config.json can say about a run whose model and data the script built."""
    from .engine.schedulers import scheduler_name

    group = trainer.optimizer.param_groups[0]
    es = early_stopping
    recorded = {
        "created_by": CREATED_BY,
        "dataset": trainer.dataset_name, "model": trainer.model_name, "epochs": num_epochs,
        "batch_size": getattr(trainer.train_loader, "batch_size", None),
        "eval_batch_size": getattr(trainer.val_loader, "batch_size", None),
        "train_size": len(trainer.train_loader.dataset), "val_size": len(trainer.val_loader.dataset),
        "num_classes": trainer.num_classes, "class_names": list(trainer.class_names or ()),
        "optimizer": type(trainer.optimizer).__name__, "lr": group.get("lr"),
        "weight_decay": group.get("weight_decay", 0.0), "scheduler": scheduler_name(scheduler),
        "patience": es.patience if es else 0, "min_delta": es.min_delta if es else 0.0,
        "restore_best": es.restore_best_weights if es else False, "monitor": trainer.monitor,
        "accum_steps": trainer.accum_steps, "clip_grad": trainer.clip_grad, "amp": trainer.precision.mode,
        "checkpoint_every": trainer.checkpoint_every, "on_nan": trainer.on_nan,
        "limit_batches": trainer.limit_batches, "device": str(trainer.device),
    }
    if trainer.config:
        recorded["settings"] = trainer.config  # the Trainer's own config=, as given
    return json.loads(json.dumps(recorded, default=repr))  # anything not JSON is recorded as its repr


def is_script_run(config: dict) -> bool:
    return config.get("created_by") == CREATED_BY

