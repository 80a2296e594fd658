"""The learning-rate range test (Leslie Smith; fastai's `lr_find`).

The LR grows exponentially from lr_min to lr_max over a fixed number of optimizer steps while
the model trains; the loss is smoothed exponentially (with bias correction, so the first steps
are not pulled towards zero), and the sweep stops once the smoothed loss exceeds `diverge` times
its minimum. Two suggestions come from the smoothed curve: the point of steepest descent and the
"valley" (fastai's: half way down the longest stretch over which the loss falls).

The sweep drives the engine's own parts: the LR owner (`LearningRate`, with the exponential
ramp as a per-step schedule, a function of the optimizer step like every other) and the
`OptimizerStep` the epoch loop uses (clipping, the GradScaler, zero_grad). The model, the
optimizer, the training loader's position and the random generators are taken with the same
parts registry a checkpoint uses, and put back afterwards: training after a sweep is exactly
training without one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .epoch import OptimizerStep
from .learning_rate import LearningRate
from .lr_schedules import Schedule
from .parts import LoaderState, RandomState, StatefulParts
from .train_state import TrainState

BETA = 0.98  # smoothing: each step's loss weighs 2%
DIVERGE = 4.0  # stop once the smoothed loss exceeds this times its minimum


@dataclass(frozen=True)
class RangeTest:
    lrs: tuple[float, ...]  # the LR of each step taken
    losses: tuple[float, ...]  # each step's training loss (mean over its batch or batches)
    smoothed: tuple[float, ...]
    lr_min: float
    lr_max: float
    steps: int  # planned
    steepest: int | None  # index into lrs; None when too few steps were taken
    valley: int | None
    stopped_early: bool  # the smoothed loss passed DIVERGE x its minimum (or a loss was not finite)

    @property
    def suggestion(self) -> int | None:
        """The index of the LR to train with: the valley (more robust to a noisy curve than the
        steepest point, fastai's default since 2.5), else the steepest point."""
        return self.valley if self.valley is not None else self.steepest

    @property
    def suggested_lr(self) -> float | None:
        i = self.suggestion
        return None if i is None else self.lrs[i]


def exponential_lr(lr_min: float, lr_max: float, steps: int) -> Callable[[int], float]:
    """The LR of optimizer step `i` (0-based): lr_min at the first, lr_max at the last."""
    ratio, last = lr_max / lr_min, max(1, steps - 1)
    return lambda i: lr_min * ratio ** (min(i, last) / last)


def smooth(losses, beta: float = BETA) -> list[float]:
    """Exponential moving average with bias correction (Adam's): avg / (1 - beta^n)."""
    out, avg = [], 0.0
    for n, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** n))
    return out


def suggestions(lrs, smoothed) -> tuple[int | None, int | None]:
    """(steepest, valley) as indices into lrs. Like fastai, the first tenth of the steps (the
    loss still settles) and the last five (the climb that stopped the sweep) are left out."""
    n = len(smoothed)
    start = n // 10
    end = n - 5 if n - 5 - start >= 5 else n
    if end - start < 3:
        return None, None
    x = np.log10(np.asarray(lrs[start:end], dtype=np.float64))
    y = np.asarray(smoothed[start:end], dtype=np.float64)
    steepest = start + int(np.argmin(np.gradient(y, x)))
    return steepest, start + valley_index(list(y))


def valley_index(losses: list[float]) -> int:
    """fastai's valley: the longest run of (not necessarily adjacent) falling losses, and the point
    half way along it - well down the slope, short of the bottom where the loss turns."""
    n = len(losses)
    longest = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[max_end] < longest[i]:
            max_end = i
            max_start = max_end - longest[max_end]
    sections = (max_end - max_start) / 3
    return min(n - 1, max_start + int(sections) + int(sections / 2))


class _NoRoot:
    """The registry's root part: a sweep has no TrainState worth keeping."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _batches(loader):
    """Batches without end: a sweep longer than an epoch goes on into the next one."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training loader yields no batches")


def range_test(model: torch.nn.Module, optimizer: torch.optim.Optimizer, criterion, loader, device, *,
               lr_min: float = 1e-7, lr_max: float = 10.0, steps: int = 100, accum_steps: int = 1,
               clip_grad: float = 0.0, scaler=None, autocast=None, channels_last: bool = False,
               beta: float = BETA, diverge: float = DIVERGE,
               progress: Callable[[int, float, float, float], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> RangeTest:
    """Sweep the LR over `steps` optimizer steps; the model, optimizer, loader position and
    random generators are as they were when this returns (or raises).

    progress(step, lr, loss, smoothed) after each step (1-based); should_stop() is asked
    between steps (a stop ends the sweep with what it has)."""
    if not 0 < lr_min < lr_max or not math.isfinite(lr_max):
        raise ValueError(f"need 0 < lr_min < lr_max, got {lr_min!r} and {lr_max!r}")
    parts = StatefulParts(root=_NoRoot())
    parts.register("model", model, live=True)
    parts.register("optimizer", optimizer, live=True)
    parts.register("loader", LoaderState(loader, TrainState()))
    parts.register("rng", RandomState())
    saved = parts.state_dict(snapshot=True)
    state = TrainState()
    lr_at = exponential_lr(lr_min, lr_max, steps)
    lr = LearningRate(optimizer, Schedule("range test", lambda base, epoch, step: lr_at(step), per_step=True))
    step = OptimizerStep(model, optimizer, scaler, clip_grad, lr)
    autocast = autocast or (lambda: torch.autocast(device_type=torch.device(device).type, enabled=False))
    lrs, losses, smoothed = [], [], []
    avg, lowest, stopped_early = 0.0, math.inf, False
    batches = _batches(loader)
    try:
        model.train()
        lr.apply(state)
        for i in range(steps):
            if should_stop is not None and should_stop():
                break
            now = lr.current
            total = 0.0
            for _ in range(accum_steps):
                x, y = next(batches)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast():
                    loss = criterion(model(x), y)
                scaled = loss / accum_steps if accum_steps > 1 else loss
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                total += float(loss.detach()) / accum_steps  # one read-back a step: the sweep needs it
            if not math.isfinite(total):
                stopped_early = True
                break
            step(state)
            avg = beta * avg + (1 - beta) * total
            value = avg / (1 - beta ** (i + 1))
            lrs.append(now)
            losses.append(total)
            smoothed.append(value)
            lowest = min(lowest, value)
            if progress is not None:
                progress(i + 1, now, total, value)
            if value > diverge * lowest:
                stopped_early = True
                break
    finally:
        optimizer.zero_grad(set_to_none=True)
        parts.load_state_dict(saved)
    steepest, valley = suggestions(lrs, smoothed)
    return RangeTest(tuple(lrs), tuple(losses), tuple(smoothed), lr_min, lr_max, steps, steepest, valley,
                     stopped_early)
