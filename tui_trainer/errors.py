"""Errors a user can cause. They are reported as one line and exit code 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment (bad flag, missing dataset, unwritable dir).

    The message is one line that names the problem and, where possible, the fix.
    """

    exit_code = 2


class CheckpointError(UserError):
    """A checkpoint that cannot be used: missing, truncated, corrupted, unsafe or incompatible."""


class UnsafeRunFileError(UserError):
    """Something planted where tui-trainer writes inside a run directory: a symbolic link, a
    hard link, a directory or a device. Writing through it would change a file elsewhere."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the run stops rather than learn from it.

    clip_grad: the run's gradient clipping (0 = off, None = not known). The hint suggests
    enabling --clip-grad only to a run that has it off, and never for a validation loss
    (clipping changes no forward pass)."""

    def __init__(self, epoch: int, step: int, phase: str = "train", clip_grad: float | None = None) -> None:
        self.epoch = epoch
        self.step = step
        self.phase = phase
        where = f"epoch {epoch}, step {step}" if phase == "train" else f"epoch {epoch} ({phase})"
        # --on-nan skip skips training batches only: it is no help for a non-finite validation
        # loss or non-finite weights, and with it on, a training loss never stops the run.
        fixes = "use --on-nan skip to skip such batches, or lower --lr" if phase == "train" else "lower --lr"
        if phase == "train" and clip_grad == 0:
            fixes += " or enable --clip-grad"
        super().__init__(f"non-finite loss at {where}; stopping ({fixes})")


class TrainingInterrupted(SystemExit):
    """`Trainer.train()` ended early because of SIGTERM, SIGHUP, Ctrl-C or quitting the console
    mid-run, after saving last.pth (when the Trainer has a save_dir).

    A SystemExit whose code is the command line's (143 SIGTERM, 129 SIGHUP, 130 SIGINT or quit):
    left uncaught, the script ends with that code and no traceback, as `tui-trainer run` does.
    Catch it to clean up first, or to carry on with the partial histories on the Trainer."""

    def __init__(self, code: int, reason: str, checkpoint: str = "") -> None:
        super().__init__(code)
        self.reason = reason  # SIGTERM | SIGHUP | SIGINT | quit
        self.checkpoint = checkpoint  # the saved last.pth, "" when nothing was saved

    def __str__(self) -> str:
        saved = f"; saved {self.checkpoint}" if self.checkpoint else ""
        return f"training interrupted ({self.reason}, exit code {self.code}){saved}"


class UserCodeError(Exception):
    """The user's own code (a model factory, an experiment file) raised an exception: their bug,
    so the command line shows their traceback (the `__cause__`) and this line, and exits 1."""

    exit_code = 1
