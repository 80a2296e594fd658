"""Validation each epoch, the final evaluation of the best model and report.json.
A mixin of `Trainer` (see loop.py), which owns the state."""

from __future__ import annotations

import math

import torch

from .. import events as ev
from ..errors import NonFiniteLossError
from . import checkpoint as ckpt
from .metrics import classification_metrics_from_confusion, predict, report_event
from .outcomes import StopValidation


class Evaluation:
    def _stoppable(self, loader):
        control = self.control
        for batch in loader:
            if control.pending and control.stop_reason is not None:
                raise StopValidation
            yield batch

    def _validate(self, epoch: int) -> tuple[float, float]:
        loader = self.val_loader
        steps = len(loader) if not self.limit_batches else min(len(loader), self.limit_batches)
        self.emit(ev.ValidationStarted(epoch=epoch, steps=steps))
        model = self.dist.eval_model(self.model) if self.dist is not None else self.model
        if self.dist is None:  # ranks stop together at step boundaries only
            loader = self._stoppable(loader)
        targets, preds, loss_sum, count = predict(
            model, loader, self.device, self.criterion, self.precision.autocast,
            self.limit_batches, self.channels_last)
        correct = int((targets == preds).sum()) if count else 0
        totals = [loss_sum, correct, count]
        if self.dist is not None:
            totals = self.dist.all_reduce_sum(totals, self.device)
        count = max(1, int(totals[2]))
        val_loss = totals[0] / count
        if not math.isfinite(val_loss):
            raise NonFiniteLossError(epoch, 0, phase="validation")
        return val_loss, 100.0 * totals[1] / count

    def _final_evaluation(self) -> None:
        if self.epoch == 0:
            return  # stopped before any epoch finished: nothing to report on
        try:
            self.load_best_model()
        except ckpt.CheckpointError as exc:  # damaged on disk since it was written: report on what we have
            self.emit(ev.Notice(level="warning", message=f"{exc}; evaluating the current weights instead"))
        self.emit(ev.Preparing(stage="evaluating", detail="final evaluation of the best model"))
        model = self.dist.eval_model(self.model) if self.dist is not None else self.model
        targets, preds, loss_sum, count = predict(
            model, self.val_loader, self.device, self.criterion, self.precision.autocast,
            self.limit_batches, self.channels_last)
        num_classes = self.num_classes or int(max(targets.max(initial=0), preds.max(initial=0)) + 1)
        cm = torch.zeros(num_classes * num_classes, dtype=torch.int64)
        cm += torch.bincount(torch.from_numpy(targets * num_classes + preds), minlength=num_classes ** 2)
        totals = [loss_sum, count]
        if self.dist is not None:
            cm = self.dist.all_reduce_tensor(cm, self.device)
            totals = self.dist.all_reduce_sum(totals, self.device)
        cm = cm.view(num_classes, num_classes).numpy()
        result = classification_metrics_from_confusion(cm, self.class_names)
        loss = totals[0] / max(1, int(totals[1]))
        self.report = result
        event = report_event(result, "validation", loss, self.best_epoch)
        self.emit(event)
        if self.save_dir is not None and self.is_main:
            self._write_report(event)

    def _write_report(self, event: ev.EvaluationReport) -> None:
        data = ev.to_dict(event)
        data.pop("event")
        data.update({"best_epoch": self.best_epoch, "best_val_acc": self.best_val_acc,
                     "best_val_loss": self.best_val_loss, "monitor": self.monitor,
                     "epochs_completed": self.epoch, "status": self.status,
                     "history": self._history_dict()})
        from ..runlog import write_json_atomic

        try:
            write_json_atomic(self.save_dir / "report.json", data)
        except OSError as exc:
            self.emit(ev.Notice(level="error", message=f"could not write report.json: {exc}"))



def validate_epoch(model, dataloader, criterion, device) -> tuple[float, float]:
    """The seed's function: evaluate; returns (loss averaged per sample, accuracy %)."""
    targets, preds, loss_sum, count = predict(model, dataloader, device, criterion)
    if not count:
        return float("nan"), 0.0
    return loss_sum / count, 100.0 * float((targets == preds).sum()) / count
