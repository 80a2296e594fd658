"""Errors a user can cause. They are reported as one line and exit code 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment (bad flag, missing dataset, unwritable dir).

    The message is one line that names the problem and, where possible, the fix.
    """

    exit_code = 2


class CheckpointError(UserError):
    """A checkpoint that cannot be used: missing, truncated, corrupted, unsafe or incompatible."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the run stops rather than learn from it."""

    def __init__(self, epoch: int, step: int, phase: str = "train") -> None:
        self.epoch = epoch
        self.step = step
        self.phase = phase
        where = f"epoch {epoch}, step {step}" if phase == "train" else f"epoch {epoch} ({phase})"
        super().__init__(
            f"non-finite loss at {where}; stopping (use --on-nan skip to skip such batches, "
            "or lower --lr / enable --clip-grad)"
        )
