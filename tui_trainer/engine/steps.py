"""The inner loop: optimizer steps of one epoch, and what happens at a step boundary.

Per step the loop does the arithmetic and nothing else: metrics stay on the device and are read
back a few times per second, and control requests (pause, stop, checkpoint, LR) cost one
attribute read unless one is pending. A mixin of `Trainer` (see loop.py), which owns the state.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch

from .. import events as ev
from ..errors import NonFiniteLossError
from .control import Requests
from .outcomes import StopTraining
from .schedulers import steps_per_batch

PROGRESS_INTERVAL = 0.25  # seconds between device read-backs of step metrics
PENDING_ELEMENTS = 8_000_000  # read back sooner if buffered outputs grow past this
WARMUP_STEPS = 2  # first steps of a process excluded from the throughput


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL = _Null()


class StepLoop:
    def _train_epoch(self, epoch: int) -> tuple[float, float, int, float, float]:
        model, opt, dev = self.model, self.optimizer, self.device
        model.train()
        steps = self.steps_per_epoch()
        K = self.accum_steps
        resume = self._resume
        self._resume = None
        start_step = 0
        sums = {"loss": 0.0, "correct": 0, "count": 0, "skipped": 0}
        if resume is not None:
            start_step = resume["step"]
            if self.is_main:  # under torchrun the saved sums cover every rank: rank 0 carries them
                sums = dict(resume["sums"])
        pending_loss: list[torch.Tensor] = []
        pending_out: list[torch.Tensor] = []
        pending_y: list[torch.Tensor] = []
        pending_bs: list[int] = []
        pending_elems = 0
        self.emit(ev.EpochStarted(epoch=epoch, num_epochs=self.num_epochs, steps=steps))
        autocast = self.precision.autocast
        clip = self.clip_grad
        per_step_sched = self.scheduler if steps_per_batch(self.scheduler) else None
        control = self.control
        skip_nan = self.on_nan == "skip"
        dist = self.dist
        epoch_t0 = time.perf_counter()
        paused_at_start = self._paused_time
        rate_t0, rate_samples0, rate_started = epoch_t0, sums["count"], self._process_steps >= WARMUP_STEPS
        last_report = epoch_t0
        step = start_step
        n_group = 0

        def readback(report: bool) -> None:
            """Fold the steps queued on the device into the epoch's sums; `report`: emit them as a
            StepProgress (the live readings; not for the flushes before a save or a pause)."""
            nonlocal pending_elems, last_report
            if pending_loss:
                # Per-step losses come back as a list and are summed on the host in step order,
                # so the epoch's numbers do not depend on when read-backs happened to fall.
                preds = torch.cat(pending_out).argmax(dim=1)
                correct = (preds == torch.cat(pending_y)).sum().float().view(1)
                values = torch.cat([torch.stack(pending_loss).float().view(-1), correct]).tolist()
                first_step = step - len(pending_loss) + 1
                window_loss, window_count = 0.0, 0
                for i, (value, bs) in enumerate(zip(values, pending_bs)):
                    if not math.isfinite(value):
                        pending_loss.clear(); pending_out.clear(); pending_y.clear(); pending_bs.clear()
                        raise NonFiniteLossError(epoch, first_step + i, clip_grad=self.clip_grad)
                    window_loss += value * bs
                    window_count += bs
                    # Added one step at a time, so the epoch's float sum is the same however the
                    # read-backs fell (and after a mid-epoch resume, which starts from a saved sum).
                    sums["loss"] += value * bs
                window_correct = int(values[-1])
                pending_loss.clear(); pending_out.clear(); pending_y.clear(); pending_bs.clear()
                pending_elems = 0
                sums["correct"] += window_correct
                sums["count"] += window_count
                window = (window_loss / window_count, 100.0 * window_correct / window_count)
            else:
                window = None
            now = time.perf_counter()
            last_report = now
            if not report or window is None or not self.is_main:
                return
            world = dist.world_size if dist is not None else 1
            self.emit(ev.StepProgress(
                epoch=epoch, step=step, steps=steps, samples=sums["count"] * world, loss=window[0], acc=window[1],
                epoch_loss=sums["loss"] / max(1, sums["count"]),
                epoch_acc=100.0 * sums["correct"] / max(1, sums["count"]),
                lr=opt.param_groups[0]["lr"], samples_per_sec=rate(now) * world, elapsed=self._active_time
                + (now - epoch_t0) - (self._paused_time - paused_at_start), skipped=sums["skipped"]))

        def rate(now: float) -> float:
            if not rate_started:
                return 0.0
            seconds = now - rate_t0 - (self._paused_time - rate_paused0)
            samples = sums["count"] - rate_samples0
            return samples / seconds if seconds > 0 and samples > 0 else 0.0

        rate_paused0 = self._paused_time
        try:
            for x, y in self.train_loader:
                step += 1
                if step > steps:
                    step -= 1
                    break
                x = x.to(dev, non_blocking=True)
                y = y.to(dev, non_blocking=True)
                if self.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                pos = (step - 1) % K
                if pos == 0:
                    n_group = min(K, steps - step + 1)  # the last group of an epoch may be short
                last_in_group = pos == n_group - 1
                sync_grads = last_in_group or dist is None
                with (dist.no_sync(model) if not sync_grads else _NULL):
                    with autocast():
                        out = model(x)
                        loss = self.criterion(out, y)
                    if skip_nan and not bool(torch.isfinite(loss)):
                        sums["skipped"] += 1
                        if not last_in_group:
                            continue
                    else:
                        # Without accumulation the division is by 1: exact, but its autograd node
                        # costs more than the rest of the step's bookkeeping on a small model.
                        scaled = loss / n_group if n_group > 1 else loss
                        (self.scaler.scale(scaled) if self.scaler else scaled).backward()
                        pending_loss.append(loss.detach())
                        pending_out.append(out.detach())
                        pending_y.append(y)
                        pending_bs.append(y.size(0))
                        pending_elems += out.numel()
                if last_in_group:
                    self._optimizer_step(clip, sums)
                    if per_step_sched is not None:
                        per_step_sched.step()
                    self._process_steps += 1
                    if not rate_started and self._process_steps >= WARMUP_STEPS:
                        rate_started = True
                        readback(report=False)
                        rate_t0, rate_samples0, rate_paused0 = time.perf_counter(), sums["count"], self._paused_time
                    if dist is not None:
                        dist.exchange_requests(control, samples=sums["count"] + sum(pending_bs))
                    if control.pending:
                        self._service(epoch, step, sums=sums, flush=lambda: readback(report=False))
                now = time.perf_counter()
                if now - last_report >= self.progress_interval or pending_elems > PENDING_ELEMENTS:
                    readback(report=True)
            # the epoch's last steps are reported too: an epoch shorter than the progress interval
            # still gives the step sparklines a point
            readback(report=True)
        finally:
            pending_loss.clear(); pending_out.clear(); pending_y.clear()
        self._epoch_sums = dict(sums)  # a stop during validation saves them (see _run_epoch)
        train_time = time.perf_counter() - epoch_t0 - (self._paused_time - paused_at_start)
        self._active_time += train_time
        totals = [sums["loss"], sums["correct"], sums["count"], sums["skipped"]]
        if dist is not None:
            totals = dist.all_reduce_sum(totals, self.device)
        count = max(1, int(totals[2]))
        epoch_rate = rate(time.perf_counter()) if rate_started else (totals[2] / train_time if train_time > 0 else 0.0)
        if dist is not None:
            epoch_rate *= dist.world_size
        return totals[0] / count, 100.0 * totals[1] / count, int(totals[3]), epoch_rate, train_time

    def _optimizer_step(self, clip: float, sums: dict) -> None:
        opt = self.optimizer
        if self.scaler is not None:
            if clip > 0:
                self.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            scale_before = self.scaler.get_scale()
            self.scaler.step(opt)
            self.scaler.update()
            if self.scaler.get_scale() < scale_before:
                sums["skipped"] += 1  # inf/nan gradients: the scaler skipped this step
        else:
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            opt.step()
        opt.zero_grad(set_to_none=True)
        self.global_step += 1

    # ------------------------------------------------------------------ control
    def _service(self, epoch: int, step: int, sums: dict | None = None, flush=None) -> None:
        """Act on pause / stop / checkpoint / LR requests at a step boundary."""
        control = self.control
        if not control.pending:
            return
        if control.paused:
            if flush is not None:
                flush()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # paused means the GPU is idle too
            self.emit(ev.Paused(epoch=epoch, step=step))
            t0 = time.perf_counter()
            while control.wait_while_paused(timeout=0.5):
                if self.dist is not None:
                    self.dist.exchange_requests(control)
                # Paused is idle at a step boundary: a save or an LR change asked for now happens
                # now (a stop ends the pause and is acted on below).
                self._act(dataclasses.replace(control.take(), stop=None), epoch, step, sums, flush)
            paused_for = time.perf_counter() - t0
            self._paused_time += paused_for
            self.emit(ev.Resumed(epoch=epoch, step=step, paused_for=paused_for))
        self._act(control.take(), epoch, step, sums, flush)

    def _act(self, requests: Requests, epoch: int, step: int, sums: dict | None, flush) -> None:
        if requests.lr_factor != 1.0:
            self._scale_lr(requests.lr_factor, epoch, step)
        progressed = self.epoch > 0 or step > 0  # nothing trained yet: nothing worth saving
        if (requests.checkpoint or requests.stop) and progressed:
            if flush is not None:
                flush()
            # Mid-epoch (even after its last step, before validation) the checkpoint records the
            # step and the epoch's running sums, so a resume continues from exactly here.
            progress = {"step": step, "sums": dict(sums)} if sums is not None and step > 0 else None
            if progress is not None and self.dist is not None:
                progress["sums"] = self.dist.reduce_sums(sums)
            kind = "manual" if requests.checkpoint and not requests.stop else "last"
            self.save("last.pth", kind, progress=progress)
        if requests.stop:
            self.emit(ev.StopRequested(reason=requests.stop))
            raise StopTraining(requests.stop)

    def _scale_lr(self, factor: float, epoch: int, step: int) -> None:
        old = self.optimizer.param_groups[0]["lr"]
        for group in self.optimizer.param_groups:
            for key in ("lr", "initial_lr", "max_lr", "min_lr"):
                if isinstance(group.get(key), (int, float)):
                    group[key] *= factor
        s = self.scheduler
        if s is not None:
            for attr in ("base_lrs", "_last_lr", "min_lrs"):
                values = getattr(s, attr, None)
                if isinstance(values, list) and attr != "min_lrs":
                    setattr(s, attr, [v * factor for v in values])
        new = self.optimizer.param_groups[0]["lr"]
        self.manual_lr_changes.append({"epoch": epoch, "step": step, "factor": factor, "lr": new, "reason": "manual"})
        self.emit(ev.LrChanged(epoch=epoch, step=step, old_lr=old, new_lr=new, reason="manual"))

