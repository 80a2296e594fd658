"""Starting the console: for a CLI run, for a user's own Trainer, and for a finished run."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from pathlib import Path

EXIT_CODES = {"quit": 130, "SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}


# Step metrics reach the console twice a second: each update redraws the progress bars and
# sparklines, and on a machine whose cores all train, UI time is training time.
CONSOLE_PROGRESS_INTERVAL = 0.5
HANGUP_GRACE = 60.0  # seconds the engine gets to save after the terminal went away


def _install_signal_handlers(app, on_hangup=None):
    """SIGTERM, SIGHUP (the SSH connection dropped) and SIGINT save last.pth and leave.
    The handlers only set flags; the engine acts on them at its next step boundary.

    After a hang-up the terminal is gone and the UI can neither draw nor restore it (its
    writes would block forever), so once the engine has saved, the process exits directly."""
    def handler(signum, frame):
        name = signal.Signals(signum).name
        if app.quit_reason:
            return
        ended = app.engine_done.is_set()  # the run is over and its report on screen: nothing to save
        app.quit_and_save(name)
        if signum == signal.SIGHUP:
            threading.Thread(target=_exit_after_engine, args=(app, on_hangup, ended), daemon=True).start()

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _exit_after_engine(app, on_hangup, ended: bool = False) -> None:
    app.engine_done.wait(HANGUP_GRACE)
    if on_hangup is not None:
        on_hangup()
    if not ended:
        os._exit(EXIT_CODES["SIGHUP"])
    # Closing the terminal on a finished run's report ends nothing: the run's own exit code.
    outcome = app.outcome
    failed = isinstance(outcome, BaseException) or getattr(outcome, "status", "") == "failed"
    os._exit((getattr(outcome, "exit_code", 0) or 1) if failed else 0)


def _restore_signal_handlers(previous) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


M_ARENA_MAX = -8  # glibc's mallopt parameter


def share_malloc_arena() -> None:
    """Make threads allocate from the main malloc arena (glibc).

    The console trains in a worker thread, and glibc gives each new thread its own arena: for
    SimpleCNN on CIFAR-shaped data that alone raised peak memory by ~90 MB over the same run on
    the main thread (measured by benchmarks/console.py memory). One shared arena brings the
    console's cost back to the UI's own ~16 MB. Other C libraries ignore this."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        pass


def build_app(config, run_dir: Path, *, resume: bool = False, extra_sinks=(), trainer_options=None, checkpoint=None,
              dist=None):
    """The console for a CLI run, as the CLI builds it (tests use this too).
    Returns (app, store, control, run_log). dist: rank 0's torchrun context, None alone."""
    from ...engine.control import Control
    from ...runlog import RunLog
    from ...runner import execute
    from .app import TrainerApp
    from .store import StateStore

    control = Control()
    store = StateStore()
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    log = RunLog(run_dir)

    def job():
        try:
            return execute(config, run_dir, [log, store, *extra_sinks], control, resume=resume, checkpoint=checkpoint,
                           dist=dist, trainer_options={"progress_interval": CONSOLE_PROGRESS_INTERVAL, **(trainer_options or {})})
        finally:
            log.close()

    return TrainerApp(store, control, job), store, control, log


def run_tui(config, run_dir: Path, *, resume: bool = False, checkpoint=None, dist=None) -> int:
    share_malloc_arena()
    app, store, control, log = build_app(config, run_dir, resume=resume, checkpoint=checkpoint, dist=dist)
    previous = _install_signal_handlers(app, on_hangup=log.close)
    try:
        app.run()
    finally:
        control.request_stop("quit")  # in case the app died before the engine finished
        _restore_signal_handlers(previous)
        log.close()
    return _exit_code(app, store)


def _exit_code(app, store) -> int:
    outcome = app.outcome
    state = store.snapshot()
    if isinstance(outcome, BaseException):
        print(f"tui-trainer: error: {type(outcome).__name__}: {outcome}", file=sys.stderr)
        return 1
    if outcome is not None and getattr(outcome, "status", "") == "failed":
        print(f"tui-trainer: error: {outcome.error}", file=sys.stderr)
        return outcome.exit_code or 1
    if app.quit_reason and state.status in ("INTERRUPTED", "STOPPING", "PREPARING", "RUNNING", "PAUSED"):
        if state.last_checkpoint and state.info is not None:
            print(f"tui-trainer: run saved; resume with: tui-trainer resume {state.info.run_dir}", file=sys.stderr)
        return EXIT_CODES.get(app.quit_reason, 130)
    return 0


def build_trainer_app(trainer, num_epochs: int, scheduler=None, early_stopping=None):
    """The console around a Trainer from the user's own script (no run directory needed)."""
    from ...runner import Outcome
    from .app import TrainerApp
    from .store import StateStore

    store = StateStore()
    trainer.events.add(store)

    def job():
        try:
            trainer.fit(num_epochs, scheduler, early_stopping)
            return Outcome(trainer.status)
        except Exception as exc:  # noqa: BLE001 - shown in the app, re-raised by train_in_tui
            return Outcome("failed", f"{type(exc).__name__}: {exc}", 1)

    return TrainerApp(store, trainer.control, job)


def train_in_tui(trainer, num_epochs: int, scheduler=None, early_stopping=None) -> str:
    """Open the console for a Trainer built in the user's own script (script_run.py calls this).
    Returns "" when the run ended on its own (finished, stopped with `s`, early-stopped), else
    what cut it short: "quit", "SIGTERM" or "SIGINT" (after a hang-up the process has exited)."""
    share_malloc_arena()
    app = build_trainer_app(trainer, num_epochs, scheduler, early_stopping)
    previous = _install_signal_handlers(app)
    try:
        app.run()
    finally:
        trainer.control.request_stop("quit")
        _restore_signal_handlers(previous)
    outcome = app.outcome
    if outcome is not None and getattr(outcome, "status", "") == "failed":
        raise RuntimeError(outcome.error)
    if app.quit_reason and app.store.snapshot().status in ("INTERRUPTED", "STOPPING", "PREPARING", "RUNNING",
                                                           "PAUSED"):
        return app.quit_reason
    return ""


def show_run(events_path: Path) -> int:
    """Open a finished (or running) run's dashboard from its events.jsonl."""
    show_app(events_path).run()
    return 0


def show_app(events_path: Path):
    """The console replaying an events.jsonl; lines it cannot use are skipped, and said so."""
    from ...event_io import printable_event, read_event_log, skipped_notice
    from ...state import replay
    from .app import TrainerApp
    from .store import StateStore

    events, skipped = read_event_log(events_path)
    if skipped:
        events.append(skipped_notice(skipped, events_path, events[-1].t if events else 0.0))
    return TrainerApp(StateStore(replay(printable_event(e) for e in events)))
