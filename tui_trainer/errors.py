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
    """Training produced a NaN or infinite loss; the run stops rather than learn from it.

    clip_grad: the run's gradient clipping (0 = off, None = not known). The hint suggests
    enabling --clip-grad only to a run that has it off, and never for a validation loss
    (clipping changes no forward pass)."""

    def __init__(self, epoch: int, step: int, phase: str = "train", clip_grad: float | None = None) -> None:
        self.epoch = epoch
        self.step = step
        self.phase = phase
        where = f"epoch {epoch}, step {step}" if phase == "train" else f"epoch {epoch} ({phase})"
        fixes = "use --on-nan skip to skip such batches, or lower --lr"
        if phase == "train" and clip_grad == 0:
            fixes += " or enable --clip-grad"
        super().__init__(f"non-finite loss at {where}; stopping ({fixes})")
