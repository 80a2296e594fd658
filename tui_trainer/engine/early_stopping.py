"""Early stopping, with the seed's interface and its shallow-copy bug fixed.

The seed kept `model.state_dict().copy()`: a new dict holding the *same* tensors, which the
optimizer keeps updating in place, so the "best weights" silently followed training. Here the
best weights are cloned tensors, and restoring them restores the best epoch exactly.
"""

from __future__ import annotations

import math
from typing import Any


def clone_state_dict(state: dict) -> dict:
    """A deep copy of a state dict: every tensor detached and cloned (same device)."""
    return {k: (v.detach().clone() if hasattr(v, "detach") else v) for k, v in state.items()}


class EarlyStopping:
    def __init__(self, patience: int = 7, min_delta: float = 0.0, restore_best_weights: bool = True,
                 verbose: bool = False, mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError("mode must be 'min' or 'max'")
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights
        self.verbose = verbose
        self.mode = mode
        self.best_loss: float | None = None  # the seed's name; holds the best monitored value
        self.best_epoch = 0
        self.counter = 0
        self.best_weights: dict | None = None
        self.stopped = False
        self._calls = 0

    def is_improvement(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_loss is None:
            return True
        if self.mode == "min":
            return value < self.best_loss - self.min_delta
        return value > self.best_loss + self.min_delta

    def __call__(self, val_loss: float, model: Any) -> bool:
        """Record one epoch's value; returns True when training should stop."""
        self._calls += 1
        if self.is_improvement(val_loss):
            self.best_loss = float(val_loss)
            self.best_epoch = self._calls
            self.counter = 0
            self.save_checkpoint(model)
            if self.verbose:
                print(f"validation loss improved to {val_loss:.6f}")
        else:
            self.counter += 1
            if self.verbose:
                print(f"validation loss did not improve ({self.counter}/{self.patience})")
        if self.patience > 0 and self.counter >= self.patience:
            self.stopped = True
            if self.restore_best_weights and self.best_weights is not None:
                model.load_state_dict(self.best_weights)
                if self.verbose:
                    print("restored the best weights")
            return True
        return False

    def save_checkpoint(self, model: Any) -> None:
        if self.restore_best_weights:
            self.best_weights = clone_state_dict(model.state_dict())

    # The trainer numbers epochs itself (a resumed run does not start at 1).
    def sync_epoch(self, calls: int) -> None:
        self._calls = calls

    def state_dict(self) -> dict:
        return {
            "patience": self.patience, "min_delta": self.min_delta, "mode": self.mode,
            "best_loss": self.best_loss, "best_epoch": self.best_epoch, "counter": self.counter,
            "stopped": self.stopped, "calls": self._calls,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_loss = state["best_loss"]
        self.best_epoch = state["best_epoch"]
        self.counter = state["counter"]
        self.stopped = state["stopped"]
        self._calls = state["calls"]
        self.best_weights = state.get("best_weights")
