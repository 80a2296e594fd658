"""How a run ends early: the exceptions the training loop raises to unwind. What each kind of
stop leads to (the final status, whether a report follows) is the StopReason's (vocab.py)."""

from __future__ import annotations

from ..vocab import StopReason


class CheckpointWriteError(RuntimeError):
    """Writing a checkpoint failed (full disk, permissions); the previous file is intact."""

    def __init__(self, message: str, epoch: int = 0, step: int = 0) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step  # where the run was when the save failed


class StopTraining(Exception):
    def __init__(self, reason: str | StopReason) -> None:
        self.reason = StopReason.parse(reason)


class StopValidation(Exception):
    """A stop was requested during validation: a quit must not wait for a long validation pass."""
