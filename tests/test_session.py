"""One Session for every way a run starts: the headless command line, torchrun's other ranks,
the console and a script's `Trainer.train` each get their exit code from the same table, and
the stop signals are handled in one place. In this process, with jobs that stand in for the
engine (no torch): a job plays what the engine does when it sees a stop request."""

from __future__ import annotations

import os
import signal
import time
from types import SimpleNamespace

import pytest

from tui_trainer import events as ev
from tui_trainer.runner import Outcome
from tui_trainer.session import QUIT, Cause, Session, exit_code

pytestmark = pytest.mark.timeout(60)

SIGNAL_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


def wait_for(condition, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def signalled_job(*signums: int, then: str = "interrupted", seen: list | None = None):
    """A job that gets `signums` sent to this process mid-run and, like the engine, ends the
    run as `then` once the stop request has arrived (recording the reason in `seen`)."""
    def job(sinks, control):
        for signum in signums:
            os.kill(os.getpid(), signum)
            wait_for(lambda: control.stop_reason is not None)
        if seen is not None:
            seen.append(control.stop_reason)
        sinks.emit(ev.Notice(level="info", message="the engine saw the stop"))
        return Outcome(then)

    return job


def outcome_job(status: str, exit_code: int = 0):
    return lambda sinks, control: Outcome(status, "it broke" if status == "failed" else "", exit_code)


# ----------------------------------------------------------------------------- the one table
@pytest.mark.parametrize("outcome, cause, code", [
    (Outcome("finished"), None, 0),
    (Outcome("early_stopped"), None, 0),
    (Outcome("stopped"), None, 0),  # the stop key: the run counts as done
    (Outcome("failed", "non-finite loss", 1), None, 1),
    (Outcome("failed", "bad checkpoint", 2), None, 2),  # a UserError found once the engine ran
    (Outcome("interrupted"), Cause.of_signal(signal.SIGHUP), 129),
    (Outcome("interrupted"), Cause.of_signal(signal.SIGINT), 130),
    (Outcome("interrupted"), Cause.of_signal(signal.SIGTERM), 143),
    (Outcome("interrupted"), QUIT, 130),
    (None, Cause.of_signal(signal.SIGTERM), 143),  # a second signal left before the engine returned
    (None, None, 130),
    (Outcome("interrupted"), None, 0),  # stopped by rank 0, or the script's own Control
    (Outcome("finished"), Cause.of_signal(signal.SIGTERM), 0),  # came too late to cut anything short
    (Outcome("failed", "disk full", 1), Cause.of_signal(signal.SIGTERM), 1),
])
def test_exit_codes_come_from_one_table(outcome, cause, code):
    assert exit_code(outcome, None, cause) == code


def test_an_exception_on_the_engine_thread_exits_1():
    assert exit_code(None, RuntimeError("bug"), Cause.of_signal(signal.SIGTERM)) == 1


# ----------------------------------------------------------------------------- signals, no console
@pytest.mark.parametrize("signum, reason", [(signal.SIGINT, "signal"), (signal.SIGTERM, "term"),
                                            (signal.SIGHUP, "term")])
def test_a_stop_signal_asks_the_engine_to_stop_and_sets_the_exit_code(signum, reason):
    seen, events = [], ev.ListSink()
    before = {s: signal.getsignal(s) for s in SIGNAL_CODES}
    with Session() as session:
        session.add_view(events)
        code = session.run(signalled_job(signum, seen=seen))
    assert (code, seen) == (SIGNAL_CODES[signum], [reason])
    assert session.interruption.name == signal.Signals(signum).name
    assert [e.message for e in events.of(ev.Notice)] == ["the engine saw the stop"]
    assert {s: signal.getsignal(s) for s in SIGNAL_CODES} == before  # handlers put back


def test_a_second_signal_leaves_at_once_with_the_first_ones_code():
    job = signalled_job(signal.SIGTERM, signal.SIGINT)  # the second raises KeyboardInterrupt in the job
    with Session() as session:
        assert session.run(job) == 143
    assert session.outcome is None and session.control.stop_reason == "term"


def test_a_keyboard_interrupt_that_no_signal_of_ours_raised_propagates():
    def job(sinks, control):
        raise KeyboardInterrupt

    with Session() as session, pytest.raises(KeyboardInterrupt):
        session.run(job)


def test_a_run_that_ends_on_its_own_after_a_signal_exits_0():
    with Session() as session:
        assert session.run(signalled_job(signal.SIGTERM, then="finished")) == 0
    assert session.interruption is None


def test_an_ignored_hangup_stays_ignored_unless_the_caller_says_otherwise():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        def job(sinks, control):
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)
            return Outcome("finished" if control.stop_reason is None else "interrupted")

        with Session() as session:
            assert session.run(job) == 0
        with Session(honour_ignored_signals=False) as session:  # torchrun's other ranks
            assert session.run(job) == 129
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_the_session_records_and_releases_the_run_directory(tmp_path):
    from tui_trainer import runlog

    lock = runlog.RunDirLock(tmp_path).acquire()
    with Session(tmp_path, lock=lock) as session:
        session.run(signalled_job(signal.SIGTERM))
        assert '"message":"the engine saw the stop"' in (tmp_path / "events.jsonl").read_text()
    runlog.RunDirLock(tmp_path).acquire().release()  # free again: another run could take it


# ----------------------------------------------------------------------------- with a console
class FakeConsole:
    """What the live console does for a Session: start the engine, leave when asked to (a stop
    signal) once the engine is done, or quit on a key."""

    def __init__(self, session: Session, action=None) -> None:
        self.session, self.action = session, action
        self.sink = ev.ListSink()
        self.quit_requested = False
        self.left: list[str] = []

    def run(self) -> None:
        self.session.start()
        wait_for(lambda: self.session.running)
        if self.action == "quit":
            self.quit_requested = True
            self.session.control.request_stop("quit")
        elif self.action is not None:
            os.kill(os.getpid(), self.action)
            wait_for(lambda: self.left)
        self.session.wait(5)

    def leave(self, why: str) -> None:
        self.left.append(why)


def engine_job(sinks, control):
    """Trains until asked to stop, as the engine does: a stop means an interrupted run."""
    wait_for(lambda: control.stop_reason is not None)
    sinks.emit(ev.StopRequested(reason=control.stop_reason))
    return Outcome("interrupted")


@pytest.mark.parametrize("signum", list(SIGNAL_CODES))
def test_with_a_console_a_stop_signal_saves_and_leaves(signum, monkeypatch):
    exits = []  # a hang-up leaves the process directly once the engine has saved (no terminal left)
    monkeypatch.setattr(os, "_exit", exits.append)
    session = Session()
    console = FakeConsole(session, signum)
    code = session.run_with_console(console, engine_job)
    assert code == SIGNAL_CODES[signum]
    assert console.left == [signal.Signals(signum).name]
    # with a console every signal leaves without the report: it would have no screen
    assert [e.reason for e in console.sink.of(ev.StopRequested)] == ["term"]
    if signum == signal.SIGHUP:
        wait_for(lambda: exits)
    assert exits == ([129] if signum == signal.SIGHUP else [])


def test_quitting_the_console_exits_130_and_a_closed_console_stops_the_run():
    session = Session()
    assert session.run_with_console(FakeConsole(session, "quit"), engine_job) == 130
    assert session.interruption.name == "quit"

    session = Session()  # a console that closes while training takes the run with it (for now)
    console = FakeConsole(session)
    console.run = lambda: session.start()
    session.run_with_console(console, engine_job)
    assert session.control.stop_reason == "quit" and session.outcome.status == "interrupted"


def test_views_can_come_and_go_while_the_engine_emits():
    session, late = Session(), ev.ListSink()

    def job(sinks, control):
        for i in range(200):
            sinks.emit(ev.Notice(level="info", message=str(i)))
            if i == 50:
                session.add_view(late)
            if i == 150:
                session.remove_view(late)
        return Outcome("finished")

    assert session.run(job) == 0
    assert [int(e.message) for e in late.events] == list(range(51, 151))


# ----------------------------------------------------------------------------- each launch path
@pytest.fixture
def fake_engine(monkeypatch):
    """Replace the engine that a RunConfig's job runs (session.config_job) with `job`."""
    from tui_trainer import session as session_module

    def use(job):
        monkeypatch.setattr(session_module, "config_job", lambda *args, **kwargs: job)

    return use


LAUNCH_CASES = [("finished", None, 0), ("failed", None, 1), ("failed-usage", None, 2),
                ("interrupted", signal.SIGHUP, 129), ("interrupted", signal.SIGINT, 130),
                ("interrupted", signal.SIGTERM, 143)]


def case_job(status: str, signum):
    if signum is not None:
        return signalled_job(signum, then=status)
    return outcome_job("failed", 2) if status == "failed-usage" else outcome_job(status, 1)


@pytest.mark.parametrize("status, signum, code", LAUNCH_CASES)
def test_the_headless_command_line(cli, tmp_path, fake_engine, status, signum, code):
    fake_engine(case_job(status, signum))
    result = cli("run", "synthetic", "--model", "mlp", "--headless", "--run-dir", tmp_path / "run")
    assert result.code == code, result.err
    assert ("tui-trainer: error: it broke" in result.err) == status.startswith("failed")


@pytest.mark.parametrize("status, signum, code", LAUNCH_CASES)
def test_torchruns_other_ranks(tmp_path, fake_engine, capsys, status, signum, code):
    from tui_trainer.config import make_config
    from tui_trainer.torchrun import run_follower

    fake_engine(case_job(status, signum))
    context = SimpleNamespace(rank=1, peer_failed=False)
    assert run_follower(context, make_config("synthetic"), tmp_path, False) == code
    # a rank's own failure is said by that rank; bad input is the same on every rank: rank 0 says it
    assert ("rank 1: error: it broke" in capsys.readouterr().err) == (status == "failed")


async def test_the_console_quit_and_a_failure(tmp_path, fake_engine, capsys):
    from tui_trainer.config import make_config
    from tui_trainer.frontends.tui.launch import _exit_code, build_app
    from tui_trainer.frontends.tui.widgets.dialogs import QuitScreen

    def training(sinks, control):
        sinks.emit(ev.Preparing(stage="loading torch"))
        wait_for(lambda: control.stop_reason is not None, timeout=30)
        return Outcome("interrupted")

    fake_engine(training)
    app, store, control, session = build_app(make_config("synthetic"), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("y")
    assert _exit_code(app, store) == 130 and control.stop_reason == "quit"

    fake_engine(outcome_job("failed", 1))
    app, store, control, session = build_app(make_config("synthetic"), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        session.wait(5)
    capsys.readouterr()
    assert _exit_code(app, store) == 1
    assert capsys.readouterr().err == "tui-trainer: error: it broke\n"


def test_a_scripts_train(one_torch_thread, tmp_path, blobs):
    """Trainer.train: a signal raises TrainingInterrupted with the command line's code; a stop
    the script asks for itself returns the histories."""
    import torch

    from tui_trainer import MLP, Trainer, TrainingInterrupted

    x, y = blobs(64, 8, 3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)

    class StopAtEpoch:
        def __init__(self, trainer, act) -> None:
            self.trainer, self.act = trainer, act

        def emit(self, event) -> None:
            if isinstance(event, ev.EpochEnd) and event.epoch == 1:
                self.act(self.trainer)

    for name, act, code in (("SIGTERM", lambda t: os.kill(os.getpid(), signal.SIGTERM), 143),
                            ("SIGHUP", lambda t: os.kill(os.getpid(), signal.SIGHUP), 129),
                            ("SIGINT", lambda t: os.kill(os.getpid(), signal.SIGINT), 130),
                            ("own stop", lambda t: t.control.request_stop("user"), None)):
        model = MLP(8, 3)
        trainer = Trainer(model, loader, loader, torch.nn.CrossEntropyLoss(),
                          torch.optim.SGD(model.parameters(), lr=0.1), "cpu", tmp_path / name)
        trainer.events.add(StopAtEpoch(trainer, act))
        if code is None:
            assert len(trainer.train(3, ui="none")[0]) == 1
            continue
        with pytest.raises(TrainingInterrupted) as raised:
            trainer.train(3, ui="none")
        assert (raised.value.code, raised.value.reason) == (code, name)
        assert raised.value.checkpoint == str(tmp_path / name / "last.pth")
