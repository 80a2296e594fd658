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


# What each monitored metric's "better" is. The other metric breaks ties: accuracies tie often
# (a saturated digits run sits at 100% for many epochs) and then the lower loss is the better model.
MONITORS = {"val_loss": "min", "val_acc": "max"}


def improves(mode: str, value: float, tie_breaker: float | None, best: float | None,
             best_tie_breaker: float | None, min_delta: float = 0.0) -> bool:
    """Is `value` a new best? Better than `best` by more than min_delta, or equal to it with a
    better tie-breaker (the other metric, which goes the other way: higher accuracy when the loss
    is monitored, lower loss when the accuracy is)."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    if (value < best - min_delta) if mode == "min" else (value > best + min_delta):
        return True
    if value != best or tie_breaker is None or best_tie_breaker is None or not math.isfinite(tie_breaker):
        return False
    return tie_breaker > best_tie_breaker if mode == "min" else tie_breaker < best_tie_breaker


def monitor_for(monitor: str | None, mode: str | None) -> str | None:
    """The metric an EarlyStopping watches: as given, or read from its mode (min: the validation
    loss, max: the accuracy); None when neither was given (the Trainer's monitor then applies)."""
    if monitor is not None:
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, not {monitor!r}")
        if mode is not None and mode != MONITORS[monitor]:
            raise ValueError(f"mode {mode!r} contradicts monitor {monitor!r} (which is {MONITORS[monitor]!r})")
        return monitor
    if mode is None:
        return None
    if mode not in ("min", "max"):
        raise ValueError("mode must be 'min' or 'max'")
    return "val_loss" if mode == "min" else "val_acc"


class EarlyStopping:
    """Stop when the monitored metric has not improved for `patience` epochs.

    monitor: "val_loss" or "val_acc" (mode "min" or "max" says the same). Inside a Trainer it
    follows the Trainer's monitor unless given; alone it watches whatever value it is called with,
    as a loss unless mode="max"."""

    def __init__(self, patience: int = 7, min_delta: float = 0.0, restore_best_weights: bool = True,
                 verbose: bool = False, mode: str | None = None, monitor: str | None = None) -> None:
        self.monitor = monitor_for(monitor, mode)
        self.mode = MONITORS[self.monitor] if self.monitor else "min"
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights
        self.verbose = verbose
        self.best_loss: float | None = None  # the seed's name; holds the best monitored value
        self.best_tie_breaker: float | None = None  # the other metric at the best epoch
        self.best_epoch = 0
        self.counter = 0
        self.best_weights: dict | None = None
        self.stopped = False
        self._calls = 0

    def watch(self, monitor: str) -> None:
        """Watch `monitor` (the Trainer's), unless this EarlyStopping was told another one."""
        if self.monitor is not None and self.monitor != monitor:
            raise ValueError(f"EarlyStopping watches {self.monitor} but the Trainer monitors {monitor}: one "
                             "metric decides both the best checkpoint and early stopping; pass the same to both")
        self.monitor, self.mode = monitor, MONITORS[monitor]

    def is_improvement(self, value: float, tie_breaker: float | None = None) -> bool:
        return improves(self.mode, value, tie_breaker, self.best_loss, self.best_tie_breaker, self.min_delta)

    def __call__(self, val_loss: float, model: Any, tie_breaker: float | None = None) -> bool:
        """Record one epoch's monitored value (the seed's argument name, whatever the metric);
        returns True when training should stop."""
        return self.update(self.is_improvement(val_loss, tie_breaker), val_loss, model, tie_breaker)

    def update(self, improved: bool, value: float, model: Any, tie_breaker: float | None = None) -> bool:
        """Record one epoch whose improvement was decided by the caller (the Trainer decides
        once, for the best checkpoint and early stopping alike); returns True to stop."""
        self._calls += 1
        name = self.monitor or "validation loss"
        if improved:
            self.best_loss = float(value)
            self.best_tie_breaker = tie_breaker
            self.best_epoch = self._calls
            self.counter = 0
            self.save_checkpoint(model)
            if self.verbose:
                print(f"{name} improved to {value:.6f}")
        else:
            self.counter += 1
            if self.verbose:
                print(f"{name} did not improve ({self.counter}/{self.patience})")
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
            "patience": self.patience, "min_delta": self.min_delta, "mode": self.mode, "monitor": self.monitor,
            "best_loss": self.best_loss, "best_tie_breaker": self.best_tie_breaker, "best_epoch": self.best_epoch,
            "counter": self.counter, "stopped": self.stopped, "calls": self._calls,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_loss = state["best_loss"]
        self.best_tie_breaker = state.get("best_tie_breaker")
        self.best_epoch = state["best_epoch"]
        self.counter = state["counter"]
        self.stopped = state["stopped"]
        self._calls = state["calls"]
        self.best_weights = state.get("best_weights")
