"""The `plateau` schedule: halve the LR when the validation loss stops improving.

It has state (the best loss so far, epochs without improvement, how often it halved), so it
is a part of its own, checkpointed with the run; the LR it gives is a pure function of that
state. The rules are torch's ReduceLROnPlateau with the seed's settings (mode min, factor 0.5,
relative threshold 1e-4, no cooldown, no floor).
"""

from __future__ import annotations

import math

from ..errors import CheckpointError


class Plateau:
    name = "plateau"
    per_step = False
    watches_val_loss = True

    def __init__(self, patience: int = 10, factor: float = 0.5, threshold: float = 1e-4, eps: float = 1e-8) -> None:
        self.patience, self.factor, self.threshold, self.eps = patience, factor, threshold, eps
        self.best = math.inf
        self.bad_epochs = 0
        self.scale = 1.0  # product of the reductions so far

    def lr(self, base: float, epoch: int, step: int) -> float:
        return base * self.scale

    def observe(self, val_loss: float, lr_now: float) -> None:
        """One epoch's validation loss; reduces the scale when the loss has not improved (by more
        than the threshold) for more than `patience` epochs. lr_now: the LR in use (a reduction
        smaller than eps is not made)."""
        if val_loss < self.best * (1 - self.threshold):
            self.best, self.bad_epochs = float(val_loss), 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            if lr_now - lr_now * self.factor > self.eps:
                self.scale *= self.factor
            self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"schedule": self.name, "best": self.best, "bad_epochs": self.bad_epochs, "scale": self.scale,
                "patience": self.patience}

    def load_state_dict(self, state: dict) -> None:
        if state.get("schedule") == "version 1":  # torch's ReduceLROnPlateau, as earlier versions saved it
            torch_state = state.get("torch") or {}
            best, bad, scale = torch_state.get("best"), torch_state.get("num_bad_epochs"), state.get("plateau_scale")
        else:
            best, bad, scale = state.get("best"), state.get("bad_epochs"), state.get("scale")
        if not (_number(best) and _count(bad) and _number(scale) and scale > 0):
            raise CheckpointError("the checkpoint's plateau schedule state is damaged")
        self.best, self.bad_epochs, self.scale = float(best), int(bad), float(scale)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**15
