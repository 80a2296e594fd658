"""The report at the end of a run, on the weights the run leaves in the model.

Those are the best epoch's (restored from memory or best_model.pth), so the report is that
epoch's validation result - its confusion matrix, kept in TrainState and in checkpoints - and
needs no second pass over the validation data. Precision, recall and F1 come from the matrix
(metrics.py). report.json is written once every checkpoint it reports on is on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .. import events as ev
from . import checkpoint as ckpt
from .control import Control
from .metrics import classification_metrics_from_confusion, report_event


class FinalReport:
    def __init__(self, *, checkpointing, validator, class_names, emit: Callable[[ev.Event], None]) -> None:
        self.checkpointing, self.validator, self.class_names, self.emit = checkpointing, validator, class_names, emit
        self.weights_epoch = 0  # the epoch whose weights the model holds
        self.last_result = None  # the latest epoch's validation

    def validated(self, epoch: int, result) -> None:
        """The model holds epoch `epoch`'s weights, which validated to `result`."""
        self.weights_epoch, self.last_result = epoch, result

    def make(self, state, model: torch.nn.Module, raw_model: torch.nn.Module, device) -> tuple[ev.EvaluationReport, dict]:
        """Restore the best weights, then the report on them: (the event, the metrics)."""
        try:
            if self.checkpointing.load_best(raw_model, device, state):
                self.weights_epoch = state.best_epoch
        except ckpt.CheckpointError as exc:  # damaged on disk since it was written: report on what we have
            self.emit(ev.Notice(level="warning", message=f"{exc}; evaluating the current weights instead"))
        self.emit(ev.Preparing(stage="evaluating", detail="final evaluation of the best model"))
        confusion, loss = self._result(state, model)
        result = classification_metrics_from_confusion(confusion.cpu().numpy(), self.class_names)
        self.checkpointing.poll()  # the checkpoints already written are announced before the report
        event = report_event(result, "validation", loss, state.best_epoch)
        self.emit(event)
        return event, result

    def _result(self, state, model) -> tuple[torch.Tensor, float]:
        last, best = self.last_result, state.best_confusion
        classes = self.validator.num_classes
        if best is not None and classes and best.shape[0] != classes:
            best = None  # a checkpoint of another class count: its matrix does not describe this model
        if self.weights_epoch == state.best_epoch and best is not None:
            return state.best_confusion, state.best_val_loss
        if last is not None and self.weights_epoch == state.epoch and last.confusion is not None:
            return last.confusion, last.loss
        # Weights whose result was not kept (a checkpoint of an earlier version): validate them once.
        result = self.validator.run(model, Control(), state.epoch)
        if result.confusion is None:
            return torch.zeros(1, 1, dtype=torch.int64), result.loss
        return result.confusion, result.loss

    def write(self, path: Path, event: ev.EvaluationReport, state, status: str) -> None:
        from ..runlog import write_json_atomic

        data = ev.to_dict(event)
        data.pop("event")
        data.update({"best_epoch": state.best_epoch, "best_val_acc": state.best_val_acc,
                     "best_val_loss": state.best_val_loss, "monitor": state.monitor,
                     "epochs_completed": state.epoch, "status": status, "history": state.history.as_dict()})
        try:
            write_json_atomic(path, data)
        except OSError as exc:
            self.emit(ev.Notice(level="error", message=f"could not write report.json: {exc}"))
