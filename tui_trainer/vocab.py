"""The words a run is described with, as types: how a run stands or how it ended (`Status`) and
why a stop was asked for (`StopReason`). Each member carries what the rest of the program needs
to know about it - its label on screen, whether a final report follows, the process exit code -
so no table of these strings exists twice. The values are the words events and files use
(`RunFinished.status`, `StopRequested.reason`, report.json), and members compare equal to them.

No torch, no Textual: the engine, the views and the command line all import this.
"""

from __future__ import annotations

from enum import Enum

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM = 129, 130, 143  # 128 + the signal's number, as shells report it


def signal_exit_code(signum: int) -> int:
    """The exit code of a process that a signal ended, as a shell reports it (SIGTERM: 143)."""
    return 128 + int(signum)


class Status(str, Enum):
    """Where a run is (the first four) or how it ended (the rest)."""

    PREPARING = "preparing"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    FINISHED = "finished"
    EARLY_STOPPED = "early_stopped"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAILED = "failed"

    @property
    def label(self) -> str:
        """As the console's status badge shows it: EARLY STOPPED."""
        return self.value.replace("_", " ").upper()

    @property
    def active(self) -> bool:
        return self in (Status.PREPARING, Status.RUNNING, Status.PAUSED, Status.STOPPING)

    @property
    def counts_as_done(self) -> bool:
        """The run reached an end of its own or the user's choosing (exit 0, "done" on screen):
        not cut short by a signal or a quit, and not failed."""
        return self in (Status.FINISHED, Status.EARLY_STOPPED, Status.STOPPED)

    @property
    def words(self) -> str:
        """How a run ended, to finish the sentence "run ... after 12 epochs"."""
        return _ENDED_WORDS.get(self, self.value.replace("_", " "))

    @property
    def exit_code(self) -> int:
        """The exit code of a run that ended so; an interrupted run's code depends on why
        (`StopReason.exit_code`), 130 when that is not known."""
        return {Status.FAILED: EXIT_FAILED, Status.INTERRUPTED: EXIT_SIGINT}.get(self, EXIT_OK)

    @classmethod
    def from_label(cls, label: str) -> "Status":
        return cls(label.strip().lower().replace(" ", "_"))

    @classmethod
    def of_end(cls, word: str) -> "Status":
        """How a run ended, from `RunFinished.status`. A word this version does not know (a
        hand-edited events.jsonl) reads as interrupted: neither done nor failed."""
        try:
            status = cls(word)
        except ValueError:
            return cls.INTERRUPTED
        return status if not status.active else cls.INTERRUPTED

    def __str__(self) -> str:
        return self.value


_ENDED_WORDS = {Status.FINISHED: "finished", Status.EARLY_STOPPED: "stopped early",
                Status.STOPPED: "stopped by the user", Status.INTERRUPTED: "interrupted",
                Status.FAILED: "failed"}


class StopReason(str, Enum):
    """Why a stop was asked for; it decides the run's final status, whether the best model is
    evaluated and reported first, and the exit code."""

    USER = "user"  # the stop key (or a script's Control): stop early, then the report
    SIGNAL = "signal"  # SIGINT / Ctrl-C without a console: save, then the report
    QUIT = "quit"  # quitting the console mid-run: save last.pth and leave
    TERM = "term"  # SIGTERM (Slurm, systemd, docker stop): save last.pth and leave
    HANGUP = "hangup"  # SIGHUP (the terminal went away), when a hang-up stops the run

    @property
    def status(self) -> Status:
        return Status.STOPPED if self is StopReason.USER else Status.INTERRUPTED

    @property
    def report(self) -> bool:
        """Evaluate the best model and write the report before the run ends."""
        return self in (StopReason.USER, StopReason.SIGNAL)

    @property
    def exit_code(self) -> int:
        return {StopReason.USER: EXIT_OK, StopReason.SIGNAL: EXIT_SIGINT, StopReason.QUIT: EXIT_SIGINT,
                StopReason.TERM: EXIT_SIGTERM, StopReason.HANGUP: EXIT_SIGHUP}[self]

    @classmethod
    def parse(cls, value: str) -> "StopReason":
        """A reason read from an event or a request; unknown words count as a termination."""
        try:
            return cls(value)
        except ValueError:
            return cls.TERM

    def __str__(self) -> str:
        return self.value
