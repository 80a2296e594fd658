"""One epoch of training: the optimizer steps, top to bottom.

Per step the loop does the arithmetic and nothing else: its metrics wait on the device in a
MetricWindow and are read back a few times a second, requests (pause, stop, checkpoint, LR)
cost one attribute read unless one is pending, and under torchrun the ranks exchange requests
at optimizer-step boundaries (a no-op alone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from .. import events as ev
from .grads import GradClipper, clear_grads
from .metric_window import MetricWindow

PROGRESS_INTERVAL = 0.25  # seconds between device read-backs of step metrics


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL = _Null()


@dataclass(frozen=True)
class EpochTotals:
    loss: float  # per sample, over every process
    accuracy: float  # percent
    skipped: int  # batches skipped (--on-nan skip) and steps the GradScaler skipped
    samples_per_sec: float  # the whole job's
    seconds: float  # of training on this process, pauses excluded


class OptimizerStep:
    """Clip (after unscaling, with a GradScaler), step, clear the gradients (set them to None),
    move a per-step LR on. Clipping and clearing are grads.py's: the same numbers as torch's
    clip_grad_norm_ and zero_grad(set_to_none=True), with less work per call."""

    def __init__(self, model: torch.nn.Module, optimizer, scaler, clip: float, lr) -> None:
        self.clip_grads = GradClipper(model)
        self.optimizer, self.scaler, self.clip, self.lr = optimizer, scaler, clip, lr

    def __call__(self, state) -> None:
        opt, scaler, clip = self.optimizer, self.scaler, self.clip
        if scaler is not None:
            if clip > 0:
                scaler.unscale_(opt)
                self.clip_grads(clip)
            scale_before = scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            if scaler.get_scale() < scale_before:
                state.sums.skipped += 1  # inf/nan gradients: the scaler skipped this step
        else:
            if clip > 0:
                self.clip_grads(clip)
            opt.step()
        clear_grads(opt)
        state.global_step += 1
        if self.lr.per_step:
            self.lr.after_optimizer_step(state)


class EagerStep:
    """One micro-batch as plain PyTorch: forward and loss under autocast, backward into the
    accumulated gradients (no DDP all-reduce until a group's last micro-batch), the metrics into
    the window, and at a group's end the OptimizerStep. graphed_step.py is the captured
    counterpart with the same interface."""

    def __init__(self, *, model, criterion, optimizer_step: OptimizerStep, scaler, autocast, process,
                 accum_steps: int, skip_nan: bool) -> None:
        self.model, self.criterion, self.optimizer_step, self.scaler = model, criterion, optimizer_step, scaler
        self.autocast, self.process, self.accum_steps, self.skip_nan = autocast, process, accum_steps, skip_nan
        self.group = accum_steps

    def start_epoch(self) -> MetricWindow:
        self.group = self.accum_steps
        self.optimizer_step.clip_grads.refresh()
        return MetricWindow()

    def __call__(self, state, x: torch.Tensor, y: torch.Tensor, window: MetricWindow, step: int, steps: int) -> bool:
        """Train on one micro-batch (`step` of `steps`, 1-based); True when the optimizer stepped."""
        K = self.accum_steps
        if (step - 1) % K == 0:
            self.group = min(K, steps - step + 1)  # the last group of an epoch may be short
        group = self.group
        last_in_group = (step - 1) % K == group - 1
        with (_NULL if last_in_group else self.process.no_sync(self.model)):
            with self.autocast():
                out = self.model(x)
                loss = self.criterion(out, y)
            if self.skip_nan and not bool(torch.isfinite(loss)):
                state.sums.skipped += 1
                if not last_in_group:
                    return False
            else:
                # Without accumulation the loss is not divided: exact, and the division's
                # autograd node would cost more than the rest of the step's bookkeeping.
                scaled = loss / group if group > 1 else loss
                scaler = self.scaler
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                window.add(loss, out, y)
        if last_in_group:
            self.optimizer_step(state)
        return last_in_group


class EpochLoop:
    def __init__(self, *, model, loader, criterion, step: OptimizerStep, scaler, autocast, device: torch.device,
                 steps: int, accum_steps: int, skip_nan: bool, channels_last: bool, process, control,
                 boundary, checkpointing, throughput, lr, emit: Callable[[ev.Event], None],
                 progress_interval: float = PROGRESS_INTERVAL, train_step=None) -> None:
        """train_step: what trains on each batch (EagerStep, or graphed_step.GraphedStep); by
        default the EagerStep of the arguments above."""
        self.model, self.loader, self.criterion, self.optimizer_step = model, loader, criterion, step
        self.scaler, self.autocast, self.device = scaler, autocast, device
        self.steps, self.accum_steps, self.skip_nan, self.channels_last = steps, accum_steps, skip_nan, channels_last
        self.process, self.control, self.boundary, self.checkpointing = process, control, boundary, checkpointing
        self.throughput, self.lr, self.emit, self.progress_interval = throughput, lr, emit, progress_interval
        self.train_step = train_step if train_step is not None else EagerStep(
            model=model, criterion=criterion, optimizer_step=step, scaler=scaler, autocast=autocast, process=process,
            accum_steps=accum_steps, skip_nan=skip_nan)

    def run(self, state, epoch: int, num_epochs: int) -> EpochTotals:
        control, process, train_step = self.control, self.process, self.train_step
        steps, meter, checkpoints = self.steps, self.throughput, self.checkpointing
        device, channels_last = self.device, self.channels_last
        window = train_step.start_epoch()
        limit, interval = window.max_elements, self.progress_interval
        sums = state.sums  # a resumed epoch starts from its saved sums and step
        step = state.step_in_epoch
        self.model.train()
        meter.start_epoch(sums.count)
        self.emit(ev.EpochStarted(epoch=epoch, num_epochs=num_epochs, steps=steps))
        last_report = time.perf_counter()
        try:
            for x, y in self.loader:
                if step == steps:
                    break
                step += 1
                state.step_in_epoch = step
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                if train_step(state, x, y, window, step, steps):  # the optimizer stepped: a step boundary
                    if not meter.measuring and meter.warm_up_step():
                        self._read(state, window, epoch, step, steps)
                        meter.restart(sums.count)
                    process.exchange_requests(control, samples=sums.count + window.samples)
                    if control.pending or checkpoints.failed:
                        self.boundary.service(state, epoch, step,
                                              flush=lambda: self._read(state, window, epoch, step, steps))
                if window.elements > limit or time.perf_counter() - last_report >= interval:
                    self._read(state, window, epoch, step, steps, report=True)
                    checkpoints.poll()  # announce the files written meanwhile (or stop on a failed write)
                    last_report = time.perf_counter()
            # the epoch's last steps are reported too: an epoch shorter than the progress interval
            # still gives the step sparklines a point
            self._read(state, window, epoch, step, steps, report=True)
            checkpoints.poll()
        finally:
            window.clear()
        return self._totals(state)

    def _read(self, state, window: MetricWindow, epoch: int, step: int, steps: int, report: bool = False) -> None:
        """Fold the steps waiting on the device into the epoch's sums; `report`: emit them as a
        StepProgress (the live readings; not for the flushes before a save or a pause)."""
        first_step = step - len(window) + 1
        losses, sizes, correct = window.read()
        if not losses:
            return
        sums = state.sums
        loss, acc = sums.add_steps(losses, sizes, correct, epoch, first_step, self.optimizer_step.clip)
        if not report:
            return
        now, world = time.perf_counter(), self.process.world_size
        self.emit(ev.StepProgress(
            epoch=epoch, step=step, steps=steps, samples=sums.count * world, loss=loss, acc=acc,
            epoch_loss=sums.loss / max(1, sums.count), epoch_acc=100.0 * sums.correct / max(1, sums.count),
            lr=self.lr.current, samples_per_sec=self.throughput.rate(sums.count, now) * world,
            elapsed=state.active_time + self.throughput.epoch_seconds(now), skipped=sums.skipped))

    def _totals(self, state) -> EpochTotals:
        sums, meter, world = state.sums, self.throughput, self.process.world_size
        now = time.perf_counter()
        seconds = meter.epoch_seconds(now)
        loss, correct, count, skipped = self.process.all_reduce_sum([sums.loss, sums.correct, sums.count,
                                                                     sums.skipped], self.device)
        count = max(1, int(count))
        rate = meter.rate(sums.count, now) if meter.measuring else (count / seconds if seconds > 0 else 0.0)
        if meter.measuring:
            rate *= world
        return EpochTotals(loss / count, 100.0 * correct / count, int(skipped), rate, seconds)
