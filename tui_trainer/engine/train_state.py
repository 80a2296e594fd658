"""TrainState: everything the loop advances, in one place (torchtnt's `State`).

The epoch and step, the optimizer steps, the history, the best epoch and its validation result,
the manual LR factor, the training time, and the running sums of the epoch being trained. It is
one of the checkpoint's parts: its fields are the checkpoint's top-level keys, under the names
the seed and earlier versions gave them (`ckpt["epoch"]`, `ckpt["history"]`, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..errors import NonFiniteLossError
from .early_stopping import improves

HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")


@dataclass
class EpochSums:
    """The running sums of the epoch being trained (losses weighted by batch size)."""

    loss: float = 0.0
    correct: int = 0
    count: int = 0
    skipped: int = 0

    def add_steps(self, losses: list[float], sizes: list[int], correct: int, epoch: int, first_step: int,
                  clip_grad: float | None = None) -> tuple:
        """Fold read-back step losses in, one step at a time and in step order, so the epoch's sum
        is the same however the read-backs fell (and after a mid-epoch resume, which starts from a
        saved sum). Returns the window's (mean loss, accuracy %)."""
        window_loss, window_count = 0.0, 0
        for i, (value, size) in enumerate(zip(losses, sizes)):
            if not math.isfinite(value):
                raise NonFiniteLossError(epoch, first_step + i, clip_grad=clip_grad)
            window_loss += value * size
            window_count += size
            self.loss += value * size
        self.correct += correct
        self.count += window_count
        return window_loss / window_count, 100.0 * correct / window_count

    def as_dict(self) -> dict:
        return {"loss": self.loss, "correct": self.correct, "count": self.count, "skipped": self.skipped}

    @classmethod
    def from_dict(cls, data: dict) -> "EpochSums":
        return cls(float(data["loss"]), int(data["correct"]), int(data["count"]), int(data["skipped"]))


@dataclass
class History:
    """Per-epoch metrics, as the seed names them (accuracies in percent; lr: the LR each epoch began with)."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)

    def append(self, train_loss: float, train_acc: float, val_loss: float, val_acc: float, lr: float) -> None:
        for key, value in zip(HISTORY_KEYS, (train_loss, train_acc, val_loss, val_acc, lr)):
            getattr(self, key).append(value)

    def as_dict(self) -> dict:
        return {key: list(getattr(self, key)) for key in HISTORY_KEYS}

    def load(self, data: dict) -> None:
        # in place: the lists the seed's train() returned stay the run's lists
        for key in HISTORY_KEYS:
            getattr(self, key)[:] = [float(v) for v in data[key]]


@dataclass
class TrainState:
    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # batches of epoch + 1 done; a checkpoint taken now resumes after them
    global_step: int = 0  # optimizer steps of the run
    sums: EpochSums = field(default_factory=EpochSums)
    epoch_start_lr: float | None = None  # the LR the epoch under way began with (its history entry)
    history: History = field(default_factory=History)
    monitor: str = "val_loss"  # the metric that decides the best epoch
    best_epoch: int = 0  # 1-based; 0 until an epoch completes
    best_val_acc: float = 0.0
    best_val_loss: float | None = None
    best_confusion: torch.Tensor | None = None  # the best epoch's validation confusion matrix
    lr_factor: float = 1.0  # manual LR changes (x2, /2), multiplied together
    lr_changes: list[dict] = field(default_factory=list)  # LR changes nobody planned: manual and plateau
    active_time: float = 0.0  # seconds of training, pauses excluded

    # ------------------------------------------------------------------ the loop's transitions
    def begin_epoch(self, lr_now: float) -> None:
        if self.step_in_epoch == 0 or self.epoch_start_lr is None:
            # resumed mid-epoch, a per-step schedule has moved on since the epoch began: keep the saved LR
            self.epoch_start_lr = lr_now

    def is_new_best(self, val_loss: float, val_acc: float, min_delta: float) -> bool:
        """By `monitor` (val_loss: lower, val_acc: higher), ties broken by the other metric."""
        if self.best_epoch == 0:
            return True
        if self.monitor == "val_acc":
            return improves("max", val_acc, val_loss, self.best_val_acc, self.best_val_loss, min_delta)
        return improves("min", val_loss, val_acc, self.best_val_loss, self.best_val_acc, min_delta)

    def end_epoch(self, epoch: int, train_loss: float, train_acc: float, result, min_delta: float) -> bool:
        """Record a trained and validated epoch; returns whether it is the new best."""
        self.epoch = epoch
        self.history.append(train_loss, train_acc, result.loss, result.accuracy, self.epoch_start_lr)
        self.step_in_epoch, self.sums, self.epoch_start_lr = 0, EpochSums(), None
        is_best = self.is_new_best(result.loss, result.accuracy, min_delta)
        if is_best:
            self.best_epoch, self.best_val_acc, self.best_val_loss = epoch, result.accuracy, result.loss
            self.best_confusion = result.confusion
        return is_best

    def restart_epoch(self) -> None:
        """Forget a mid-epoch position (the data cannot resume there): the epoch starts over."""
        self.step_in_epoch, self.sums, self.epoch_start_lr = 0, EpochSums(), None

    def restored_history(self, steps_per_epoch: int, early_stop_counter: int) -> dict:
        """The RunStarted fields of a resumed run: what the epochs before the resume left."""
        steps = max(1, steps_per_epoch)
        changes = tuple((c["epoch"] - 1 + min(c["step"], steps) / steps, c["lr"], c.get("reason", "manual"))
                        for c in self.lr_changes)
        h = self.history
        return dict(history_train_loss=tuple(h.train_loss), history_train_acc=tuple(h.train_acc),
                    history_val_loss=tuple(h.val_loss), history_val_acc=tuple(h.val_acc), history_lr=tuple(h.lr),
                    best_epoch=self.best_epoch, best_val_acc=self.best_val_acc if self.best_epoch else None,
                    best_val_loss=self.best_val_loss, lr_changes=changes, early_stop_counter=early_stop_counter)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        mid_epoch = self.step_in_epoch > 0
        return {
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "epoch_sums": self.sums.as_dict() if mid_epoch else None,
            "epoch_start_lr": self.epoch_start_lr if mid_epoch else None,
            "global_step": self.global_step, "history": self.history.as_dict(),
            "best_val_acc": self.best_val_acc, "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
            "best_confusion": self.best_confusion, "monitor": self.monitor,
            "manual_lr_changes": [dict(change) for change in self.lr_changes], "lr_factor": self.lr_factor,
            "active_time": self.active_time,
        }

    def load_state_dict(self, data: dict) -> None:
        """Restore from a checkpoint whose fields were validated (checkpoint_fields.py)."""
        self.epoch, self.global_step = data["epoch"], data["global_step"]
        self.history.load(data["history"])
        self.best_val_acc, self.best_epoch = float(data["best_val_acc"]), data["best_epoch"]
        self.best_val_loss = data.get("best_val_loss")
        if self.best_val_loss is None and 0 < self.best_epoch <= len(self.history.val_loss):  # older checkpoints
            self.best_val_loss = self.history.val_loss[self.best_epoch - 1]
        self.best_confusion = data.get("best_confusion")
        self.lr_changes = [dict(change) for change in data.get("manual_lr_changes") or []]
        self.lr_factor = float(data.get("lr_factor", 1.0))
        self.active_time = float(data.get("active_time", 0.0))
        self.step_in_epoch = int(data.get("step_in_epoch") or 0)
        if self.step_in_epoch:
            self.sums = EpochSums.from_dict(data["epoch_sums"])
            self.epoch_start_lr = data.get("epoch_start_lr")
        else:
            self.restart_epoch()
