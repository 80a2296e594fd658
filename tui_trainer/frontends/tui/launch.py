"""Starting the console: for a CLI run, for a user's own Trainer, and for a finished run.

A live run's console is one client of the run's Session (session.py): the Session owns the
run directory, the engine thread, the stop signals and the exit code; the console shows the
events and turns keys into Control calls."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

# Step metrics reach the console twice a second: each update redraws the progress bars and
# sparklines, and on a machine whose cores all train, UI time is training time.
CONSOLE_PROGRESS_INTERVAL = 0.5

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


def console_app(session):
    """The console as a client of `session`: its view of the events, keys on its Control."""
    from .app import TrainerApp
    from .store import StateStore

    app = TrainerApp(StateStore(), session.control, session)
    session.attach(app)
    return app


def config_job_for_console(config, run_dir: Path, *, resume: bool = False, checkpoint=None, trainer_options=None,
                           dist=None):
    from ...session import config_job

    return config_job(config, run_dir, resume=resume, checkpoint=checkpoint, dist=dist,
                      trainer_options={"progress_interval": CONSOLE_PROGRESS_INTERVAL, **(trainer_options or {})})


def build_app(config, run_dir: Path, *, resume: bool = False, extra_sinks=(), trainer_options=None, checkpoint=None):
    """The console for a CLI run, as the CLI builds it (tests use this too; the run directory
    is not locked). Returns (app, store, control, session)."""
    from ...session import Session

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    session = Session(run_dir)
    session.job = config_job_for_console(config, run_dir, resume=resume, checkpoint=checkpoint,
                                         trainer_options=trainer_options)
    app = console_app(session)
    for sink in extra_sinks:
        session.add_view(sink)
    return app, app.store, session.control, session


def run_tui(session, config, run_dir: Path, *, resume: bool = False, checkpoint=None, dist=None) -> int:
    """The console for a CLI run in `session`; returns the exit code once it has closed.
    dist: rank 0's torchrun context, None alone."""
    share_malloc_arena()
    app = console_app(session)
    session.run_with_console(app, config_job_for_console(config, run_dir, resume=resume, checkpoint=checkpoint,
                                                         dist=dist))
    return _exit_code(app, app.store)


def _exit_code(app, store) -> int:
    """What the terminal shows once the console has closed, and the process's exit code."""
    from ...vocab import Status

    session = app.engine
    session.wait()
    state = store.snapshot()
    if session.error is not None:
        print(f"tui-trainer: error: {type(session.error).__name__}: {session.error}", file=sys.stderr)
        return session.exit_code
    outcome = session.outcome
    if outcome is not None and outcome.status == Status.FAILED:
        print(f"{outcome.user_traceback}tui-trainer: error: {outcome.error}", file=sys.stderr)
        return session.exit_code
    print_outcome(state)
    if session.interruption is not None and state.last_checkpoint and state.info is not None:
        print(f"tui-trainer: run saved; resume with: tui-trainer resume {state.info.run_dir}", file=sys.stderr)
    return session.exit_code


def print_outcome(state) -> None:
    """The headless log's last line (status, epochs, time, best epoch) and the run directory:
    the screen that showed them is gone once the console closes."""
    from ...describe import describe

    if state.end is None:
        return
    print(describe(state.end).text)
    if state.info is not None and state.info.run_dir:
        print(f"run directory {state.info.run_dir}")


def build_trainer_app(trainer, num_epochs: int, scheduler=None, early_stopping=None):
    """The console around a Trainer from the user's own script (no run directory needed)."""
    from ...script_run import fit_job
    from ...session import Session

    session = Session(control=trainer.control)
    trainer.events.add(session.sinks)
    session.job = fit_job(trainer, num_epochs, scheduler, early_stopping)
    return console_app(session)


def train_in_tui(session, job) -> None:
    """Open the console for a Trainer built in the user's own script (script_run.py calls this);
    the session says how the run ended."""
    share_malloc_arena()
    session.run_with_console(console_app(session), job)


def build_show_app(run_dir: Path):
    """The console for `show`: a finished run's dashboard and report from its events.jsonl, or,
    while another process still writes the run, a read-only view that follows it. Lines that are
    not valid events are skipped, and said so."""
    from ...event_io import printable_event, skipped_notice
    from ...state import replay
    from ..follow import EventsFollower
    from .app import TrainerApp
    from .store import StateStore

    follower = EventsFollower(run_dir)
    events = follower.read_all()
    if follower.skipped:
        events.append(skipped_notice(follower.skipped, follower.path, events[-1].t if events else 0.0))
    store = StateStore(replay(printable_event(e) for e in events))
    following = None if follower.ended else follower
    return TrainerApp(store, follow=following)


def show_run(run_dir: Path) -> int:
    build_show_app(run_dir).run()
    return 0
