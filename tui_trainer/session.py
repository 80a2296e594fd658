"""One Session around the engine, for every way a run starts.

The engine trains; a Session holds everything else a run has: the run directory's lock and its
record (events.jsonl), the Control that keys, signals and scripts act through, the views its
events go to, the stop signals, and the exit code. The headless log (`cli.run_headless`), the
console (`frontends/tui/launch.py`), torchrun's other ranks (`torchrun.run_follower`) and a
script's `Trainer.train` (`script_run.py`) are thin users: each hands the Session a job (what
trains) and its views, and gets back an exit code.

The run's lifetime belongs to the Session, not to a view. A run goes on with no console at all
(headless), a console is one client among the views (`attach` / `detach`, while the engine
emits), and what a console leaving means is decided here (`detach`): quitting it stops the run
with `quit`; a hang-up (the terminal gone) only removes the console when the session was made
with `on_hangup="continue"`, and the run trains on as a headless one would.

Every session that records a run directory also serves its control channel (control_server.py)
from the moment it trains until the engine is done: `tui-trainer ctl` and `attach` act through
the same Control as the keys.

No torch, no Textual, no Rich: the console reaches the Session through the `Console` protocol.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from . import events as ev
from .engine.control import Control
from .hangup import silence_terminal, watch_terminal
from .vocab import EXIT_FAILED, EXIT_OK, EXIT_SIGINT, Status, StopReason, signal_exit_code

# What each stop signal asks of a run without a console. With one, every signal means "save and
# leave": there would be no screen left to show a report on.
STOP_SIGNALS = {signal.SIGINT: StopReason.SIGNAL, signal.SIGTERM: StopReason.TERM,
                signal.SIGHUP: StopReason.TERM}
HANGUP_GRACE = 60.0  # seconds the engine gets to save after the console's terminal went away

Job = Callable[[ev.Sink, Control], Any]  # (the session's sinks, its Control) -> runner.Outcome


@dataclass(frozen=True)
class Cause:
    """What cut a run short from outside the engine: a stop signal, or quitting the console."""

    name: str  # SIGINT | SIGTERM | SIGHUP | quit (TrainingInterrupted.reason)
    reason: StopReason  # given to the Control
    exit_code: int

    @classmethod
    def of_signal(cls, signum: int, console: bool = False) -> "Cause":
        reason = StopReason.TERM if console else STOP_SIGNALS[signum]
        return cls(signal.Signals(signum).name, reason, signal_exit_code(signum))


QUIT = Cause("quit", StopReason.QUIT, StopReason.QUIT.exit_code)


def interruption(outcome, error: BaseException | None, cause: Cause | None) -> Cause | None:
    """The signal or quit that decides how a run ends, if one does: one that came while the
    run could still be cut short. A run that failed, or reached an end of its own (finished,
    stopped early, stopped by the user), keeps its own exit code whatever came after."""
    if cause is None or error is not None:
        return None
    if outcome is not None and (outcome.status == Status.FAILED or Status.of_end(outcome.status).counts_as_done):
        return None
    return cause


def exit_code(outcome, error: BaseException | None, cause: Cause | None) -> int:
    """The exit code of every launch path (README, "Signals and exit codes"):
    0 done (finished, stopped early, stopped by the user); 1 failed (2 for bad input found once
    the engine started); 128 + N cut short by signal N (129 SIGHUP, 130 SIGINT, 143 SIGTERM);
    130 the console quit mid-run, or the engine interrupted before it could say how the run ended.
    A run interrupted by a stop that did not come from this process (rank 0's, or the script's
    own Control) did its part and exits 0."""
    if error is not None:
        return EXIT_FAILED
    if outcome is not None and outcome.status == Status.FAILED:
        return outcome.exit_code or EXIT_FAILED
    cut = interruption(outcome, error, cause)
    if cut is not None:
        return cut.exit_code
    return EXIT_SIGINT if outcome is None else EXIT_OK


class Console(Protocol):
    """A live console as a client of a Session (frontends/tui's App is one)."""

    sink: ev.Sink  # the console's view of the events
    quit_requested: bool  # the user chose to quit mid-run

    def run(self) -> Any: ...  # blocks until the console closes; starts the engine with `start`

    def leave(self, why: str) -> None: ...  # a stop signal came: close once the engine has saved

    def drop(self) -> None: ...  # its terminal is gone: close at once, drawing nothing more


class Sinks:
    """The session's sinks (the record first, then the views). Views may come and go while the
    engine emits: the tuple is replaced, never changed, so an emit in flight is never disturbed."""

    def __init__(self) -> None:
        self._sinks: tuple[ev.Sink, ...] = ()
        self._change = threading.Lock()
        self.errors: list[str] = []

    def add(self, sink: ev.Sink) -> None:
        with self._change:
            self._sinks += (sink,)

    def remove(self, sink: ev.Sink) -> None:
        with self._change:
            self._sinks = tuple(s for s in self._sinks if s is not sink)

    def emit(self, event: ev.Event) -> None:
        for sink in self._sinks:
            try:
                sink.emit(event)
            except Exception as exc:  # noqa: BLE001 - a view's bug must not stop training
                self.errors.append(f"{type(sink).__name__}: {exc!r}")


class Session:
    """One run. `run(job)` trains on this thread (no console); `run_with_console(console, job)`
    trains on a thread of its own while the console runs on this one. Either way the Session
    installs the stop signals, records the events, and says the exit code (`exit_code`).

    run_dir: where events.jsonl is recorded (None: nowhere, as for torchrun's other ranks).
    lock: the run directory's RunDirLock, already held; the Session releases it on `close`.
    on_hangup: with a console, what SIGHUP does: "stop" (save last.pth and leave, exit 129) or
    "continue" (the console goes; the run trains on with no view but its record).
    honour_ignored_signals: a stop signal the caller ignores (nohup, a script's background job)
    stays ignored when no console is attached."""

    def __init__(self, run_dir: str | os.PathLike | None = None, *, lock=None, control: Control | None = None,
                 record: bool = True, honour_ignored_signals: bool = True, on_hangup: str = "stop") -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.lock = lock
        self.control = control if control is not None else Control()
        self.sinks = Sinks()
        self.honour_ignored_signals = honour_ignored_signals
        self.job: Job | None = None
        self.outcome = None  # what the job returned (runner.Outcome)
        self.error: BaseException | None = None  # what the job raised, when it ran on the engine thread
        self.cause: Cause | None = None  # the first stop signal, or the console's quit
        self.done = threading.Event()  # set once the job has returned or raised
        self.consoles: list[Console] = []
        self.run_log = None
        self.metrics_csv = None
        self._thread: threading.Thread | None = None
        self._on_done: list[Callable[[], None]] = []
        self._signals = 0
        self._signal_console: Console | None = None  # the console stop signals go to, while one runs
        self._previous: dict = {}
        self.on_hangup = on_hangup
        self.hung_up = False  # the console's terminal went away and the run went on without it
        self.control_server = None
        self.run_status = None  # the run's RunState for the control channel's `status`
        if record and self.run_dir is not None:
            from .runlog import RunLog

            try:
                self.run_log = RunLog(self.run_dir)
            except BaseException:
                self.close()  # a run that cannot record does not start: the lock goes too
                raise
            self.sinks.add(self.run_log)
            from .sinks.metrics_csv import MetricsCsv

            self.metrics_csv = MetricsCsv(self.run_dir)  # every recorded run keeps one
            self.sinks.add(self.metrics_csv)
            from .control_server import RunStatus

            self.run_status = RunStatus()
            self.sinks.add(self.run_status)

    # ----- views -----
    def add_view(self, sink: ev.Sink) -> None:
        self.sinks.add(sink)

    def remove_view(self, sink: ev.Sink) -> None:
        self.sinks.remove(sink)

    def attach(self, console: Console) -> None:
        """A console joins: it sees every event from now on and acts through `control`."""
        if console not in self.consoles:
            self.consoles.append(console)
            self.add_view(console.sink)

    def detach(self, console: Console | None = None) -> None:
        """A console has closed. A run does not outlive its console yet: it stops with `quit`
        (save last.pth and leave). The console's view keeps following to the run's end, so what
        the terminal is told once the console has gone is the run's real outcome."""
        if console is not None and self.cause is None and console.quit_requested:
            self.cause = QUIT
        if self.hung_up and console is not None and not console.quit_requested:
            return  # the terminal went away: the run goes on without it
        if not self.done.is_set() and self.control.stop_reason is None:
            self.control.request_stop(StopReason.QUIT.value)  # one not started yet stops as it starts

    # ----- running -----
    def run(self, job: Job) -> int:
        """Train on this thread with the stop signals of a run without a console: the first asks
        for a graceful stop, a second leaves at once (saves are atomic). An exception from the
        job propagates (a bug gets its traceback) once the record is closed."""
        self.job = job
        self.serve_control()
        with self._stop_signals(None):
            try:
                self.outcome = job(self.sinks, self.control)
            except KeyboardInterrupt:
                if not self._signals:
                    raise  # not one of ours: a handler the caller installed, or none
            finally:
                self._engine_ended()
        return self.exit_code

    def run_with_console(self, console: Console, job: Job | None = None) -> int:
        """Run `console` on this thread; it starts the engine (`start`) once its first frame is
        up. When it closes, the run stops unless it has ended (`detach`), and this returns once
        the engine has."""
        if job is not None:
            self.job = job
        self.attach(console)
        self.serve_control()
        with self._stop_signals(console):
            watch = threading.Event()
            if threading.current_thread() is threading.main_thread() and os.isatty(0):
                threading.Thread(target=watch_terminal, args=(watch, lambda: self.hung_up), name="terminal-watch",
                                 daemon=True).start()
            try:
                console.run()
            finally:
                watch.set()
                self.detach(console)
                if self.hung_up and self._thread is None:
                    self.start()  # the terminal went before the console's first frame started it
                self.wait()
        return self.exit_code

    def start(self, on_done: Callable[[], None] | None = None) -> None:
        """Start the job on a thread of its own (once; later calls only add `on_done`, which is
        called on that thread when the job has returned)."""
        if on_done is not None:
            self._on_done.append(on_done)
        if self._thread is not None or self.job is None:
            return
        self.serve_control()
        self._thread = threading.Thread(target=self._engine_thread, name="engine", daemon=True)
        self._thread.start()

    def _engine_thread(self) -> None:
        try:
            self.outcome = self.job(self.sinks, self.control)
        except BaseException as exc:  # noqa: BLE001 - the launcher says it (or re-raises it)
            self.error = exc
        finally:
            self._engine_ended()

    def serve_control(self) -> None:
        """Serve the run directory's control channel (once; a run that records one)."""
        if self.control_server is not None or self.run_status is None or self.done.is_set():
            return
        from .control_server import ControlServer

        self.control_server = ControlServer(self.run_dir, self.control, self.run_status.snapshot)
        if not self.control_server.start():
            # The run trains all the same; the log says why `ctl` and `attach` cannot steer it.
            self.sinks.emit(ev.Notice("warning", self.control_server.error))

    def _engine_ended(self) -> None:
        if self.control_server is not None:
            self.control_server.close()  # nothing left to steer: `ctl` now says the run has ended
        if self.run_log is not None:
            self.run_log.close()  # the record is complete the moment the engine is done
        if self.metrics_csv is not None:
            self.metrics_csv.close()
        self.done.set()
        for callback in self._on_done:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a console that has gone cannot be told
                pass

    @property
    def running(self) -> bool:
        """The engine thread has started and not yet returned."""
        return self._thread is not None and not self.done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for an engine thread that was started; True once nothing is training."""
        if self._thread is None:
            return True
        return self.done.wait(timeout)

    @property
    def exit_code(self) -> int:
        return exit_code(self.outcome, self.error, self.cause)

    @property
    def interruption(self) -> Cause | None:
        """The signal or quit that cut this run short, if one did (it set the exit code)."""
        return interruption(self.outcome, self.error, self.cause)

    def close(self) -> None:
        """Release the run directory: the record closed, the lock given back (idempotent)."""
        if self.control_server is not None:
            self.control_server.close()
        if self.run_log is not None:
            self.run_log.close()
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- stop signals: the one place a run handles them -----
    def _stop_signals(self, console: Console | None) -> "_Installed":
        return _Installed(self, console)

    def _on_signal(self, signum: int, frame) -> None:
        if signum == signal.SIGHUP and self.hung_up:
            return  # the terminal is already gone; it cannot go twice
        self._signals += 1
        console = self._signal_console
        if console is not None:
            if self.cause is not None or console.quit_requested:
                return  # already leaving; the UI thread must never get a KeyboardInterrupt
            ended = self.done.is_set()
            if signum == signal.SIGHUP and self.on_hangup == "continue":
                self._drop_console(console)
                return
            self.cause = Cause.of_signal(signum, console=True)
            self.control.request_stop(self.cause.reason.value)
            console.leave(self.cause.name)
            if signum == signal.SIGHUP:
                # The terminal is gone: the console can neither draw nor restore it (its writes
                # would block), so once the engine has saved, the process leaves directly.
                threading.Thread(target=self._exit_after_hangup, args=(ended,), daemon=True).start()
            return
        if self._signals > 1:
            raise KeyboardInterrupt  # a second signal: leave at once; what the first saved is intact
        self.cause = Cause.of_signal(signum)
        self.control.request_stop(self.cause.reason.value)

    def _drop_console(self, console: Console) -> None:
        """The console's terminal is gone but the run goes on: the console closes, drawing
        nothing, and stop signals from now on act as they do on a run without one."""
        self.hung_up = True
        self._signal_console = None
        self._signals = 0  # the next SIGTERM or SIGINT is a first one: a graceful stop
        silence_terminal()
        threading.Thread(target=console.drop, name="hangup", daemon=True).start()

    def _exit_after_hangup(self, ended: bool) -> None:
        if not ended:
            self.wait(HANGUP_GRACE)  # an engine not started yet has nothing to save
        self.close()
        # A hang-up on a finished run's report ends nothing: the run's own exit code.
        os._exit(self.exit_code)


class _Installed:
    """The session's stop-signal handlers, while a run is under way (main thread only: Python
    delivers signals there; a script training in another thread keeps its own)."""

    def __init__(self, session: Session, console: Console | None) -> None:
        self.session, self.console = session, console

    def __enter__(self) -> None:
        session = self.session
        session._signal_console = self.console
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if self.console is None and session.honour_ignored_signals and (
                    current is signal.SIG_IGN or (signum == signal.SIGHUP and current is not signal.SIG_DFL)):
                continue
            session._previous[signum] = signal.signal(signum, session._on_signal)

    def __exit__(self, *exc) -> None:
        previous, self.session._previous = self.session._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        self.session._signal_console = None


def config_job(config, run_dir: str | os.PathLike, *, resume: bool = False, checkpoint: tuple | None = None,
               dist=None, system_interval: float | None = 2.0, trainer_options: dict | None = None,
               record_sinks: bool = True) -> Job:
    """The job of a run described by a RunConfig (the command line's): build everything on the
    engine thread, then train (runner.execute). With record_sinks=False the engine gets no
    sinks at all (torchrun's other ranks: rank 0 speaks for the run)."""
    def job(sinks: ev.Sink, control: Control):
        from .runner import execute

        return execute(config, Path(run_dir), [sinks] if record_sinks else [], control, resume=resume,
                       dist=dist, system_interval=system_interval, trainer_options=trainer_options,
                       checkpoint=checkpoint)

    return job
