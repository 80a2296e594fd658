"""How a run ends early: the exceptions the training loop raises to unwind, and what each
kind of stop request leads to."""

from __future__ import annotations

# What a stop request leads to: (final status, evaluate and write the report?)
STOP_OUTCOMES = {"user": ("stopped", True), "signal": ("interrupted", True),
                 "quit": ("interrupted", False), "term": ("interrupted", False)}


class CheckpointWriteError(RuntimeError):
    """Writing a checkpoint failed (full disk, permissions); the previous file is intact."""

    def __init__(self, message: str, epoch: int = 0, step: int = 0) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step  # where the run was when the save failed


class StopTraining(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class StopValidation(Exception):
    """A stop was requested during validation: a quit must not wait for a long validation pass."""
