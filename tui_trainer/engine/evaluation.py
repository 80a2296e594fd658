"""Validation: one pass over the validation loader per epoch.

The loss and the confusion matrix accumulate on the device (the matrix with one `bincount`)
and come back in one transfer at the end, summed over every process in one all-reduce. The
matrix is the epoch's whole result: accuracy is its trace, and the final report's precision,
recall and F1 are computed from the best epoch's matrix (metrics.py) - no second pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import NonFiniteLossError
from .metrics import predict


@dataclass(frozen=True)
class ValidationResult:
    loss: float  # per sample
    accuracy: float  # percent
    confusion: torch.Tensor | None  # [true class, predicted class] counts (int64, CPU); None without classes
    count: int


class Validator:
    def __init__(self, loader, criterion, device: torch.device, autocast, process, *, limit_batches: int | None = None,
                 channels_last: bool = False, num_classes: int | None = None) -> None:
        self.loader, self.criterion, self.device, self.autocast = loader, criterion, device, autocast
        self.process = process
        self.limit_batches = limit_batches
        self.channels_last = channels_last
        self.num_classes = num_classes

    @property
    def steps(self) -> int:
        n = len(self.loader)
        return min(n, self.limit_batches) if self.limit_batches else n

    @torch.inference_mode()
    def run(self, model: torch.nn.Module, control, epoch: int) -> ValidationResult:
        """Validate `model`; raises StopValidation (one process) when a stop is asked for meanwhile."""
        model = self.process.eval_model(model)
        model.eval()
        classes = self.num_classes
        losses, cells = [], []
        for i, (x, y) in enumerate(self.process.interruptible(self.loader, control)):
            if self.limit_batches is not None and i >= self.limit_batches:
                break
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast():
                out = model(x)
                losses.append(self.criterion(out.float(), y).detach() * y.size(0))
            classes = classes or out.size(1)
            cells.append(y * classes + out.argmax(dim=1))
        size = (classes or 0) ** 2
        if cells:
            # the loss summed in float32 as a per-batch list, then carried exactly in float64
            totals = torch.cat([torch.stack(losses).sum().double().view(1),
                                torch.bincount(torch.cat(cells), minlength=size).double()])
        else:  # an empty shard (another process may have batches)
            totals = torch.zeros(1 + size, dtype=torch.float64)
        totals = self.process.all_reduce_tensor(totals.cpu(), self.device)  # the one read-back
        confusion = totals[1:].to(torch.int64).view(classes, classes) if classes else None
        count = int(totals[1:].sum())
        loss = float(totals[0]) / max(1, count)
        if not math.isfinite(loss):
            raise NonFiniteLossError(epoch, 0, phase="validation")
        correct = int(confusion.diagonal().sum()) if confusion is not None else 0
        return ValidationResult(loss, 100.0 * correct / max(1, count), confusion, count)


def validate_epoch(model, dataloader, criterion, device) -> tuple[float, float]:
    """The seed's function: evaluate; returns (loss averaged per sample, accuracy %)."""
    targets, preds, loss_sum, count = predict(model, dataloader, device, criterion)
    if not count:
        return float("nan"), 0.0
    return loss_sum / count, 100.0 * float((targets == preds).sum()) / count
