"""The fit loop: train and validate epochs, checkpoints, schedulers, early stopping, the report.

It reads top to bottom: `fit` runs epochs; `_train_epoch` runs optimizer steps; everything a
user can see leaves through `emit`. Per step the loop does the arithmetic and nothing else:
metrics stay on the device and are read back a few times per second, and control requests
(pause, stop, checkpoint, LR) cost one attribute read unless one is pending.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import events as ev
from ..errors import NonFiniteLossError, UserError
from . import checkpoint as ckpt
from .control import Control, Requests
from .early_stopping import EarlyStopping, clone_state_dict
from .metrics import classification_metrics, predict, report_event
from .precision import Precision, resolve_precision
from .schedulers import planned_lrs, scheduler_name, steps_per_batch

PROGRESS_INTERVAL = 0.25  # seconds between device read-backs of step metrics
PENDING_ELEMENTS = 8_000_000  # read back sooner if buffered outputs grow past this
WARMUP_STEPS = 2  # first steps of a process excluded from the throughput
# What a stop request leads to: (final status, evaluate and write the report?)
STOP_OUTCOMES = {"user": ("stopped", True), "signal": ("interrupted", True),
                 "quit": ("interrupted", False), "term": ("interrupted", False)}


class CheckpointWriteError(RuntimeError):
    """Writing a checkpoint failed (full disk, permissions); the previous file is intact."""

    def __init__(self, message: str, epoch: int = 0, step: int = 0) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step  # where the run was when the save failed


class _StopTraining(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class _StopValidation(Exception):
    """A stop was requested during validation: a quit must not wait for a long validation pass."""


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DistributedDataParallel


class Trainer:
    """Train a classifier. Keeps the seed's constructor and `train()`; adds events, control,
    accumulation, mixed precision, exact resume and crash-safe checkpoints."""

    def __init__(self, model: torch.nn.Module, train_loader, val_loader, criterion, optimizer,
                 device: torch.device | str = "cpu", save_dir: str | os.PathLike | None = "./checkpoints", *,
                 sinks: Sequence[ev.Sink] = (), control: Control | None = None,
                 clip_grad: float = 1.0, accum_steps: int = 1, amp: str | Precision = "off",
                 checkpoint_every: int = 10, class_names: Sequence[str] | None = None,
                 num_classes: int | None = None, on_nan: str = "stop", limit_batches: int | None = None,
                 channels_last: bool = False, run_name: str | None = None, dataset_name: str = "custom",
                 model_name: str | None = None, config: dict | None = None, dist=None,
                 progress_interval: float = PROGRESS_INTERVAL, compiled: bool = False) -> None:
        self.model = model
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.criterion = criterion
        self.optimizer = optimizer
        self.device = torch.device(device)
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.events = ev.Fanout(sinks)
        self.control = control or Control()
        self.clip_grad = float(clip_grad or 0.0)
        self.accum_steps = max(1, int(accum_steps))
        self.precision = amp if isinstance(amp, Precision) else resolve_precision(amp, self.device)
        self.scaler = self.precision.make_scaler()
        self.checkpoint_every = checkpoint_every
        self.num_classes = num_classes
        self.class_names = tuple(class_names) if class_names else None
        self.on_nan = on_nan
        self.limit_batches = limit_batches
        self.channels_last = channels_last
        self.run_name = run_name or (self.save_dir.name if self.save_dir else "run")
        self.dataset_name = dataset_name
        self.model_name = model_name or type(_unwrap(model)).__name__
        self.config = dict(config or {})
        self.dist = dist
        self.progress_interval = progress_interval
        self.compiled = compiled
        self.is_main = dist is None or dist.is_main
        # history, as the seed names it (accuracies in percent)
        self.train_losses: list[float] = []
        self.train_accs: list[float] = []
        self.val_losses: list[float] = []
        self.val_accs: list[float] = []
        self.lrs: list[float] = []
        self.best_val_acc = 0.0
        self.best_epoch = 0  # 1-based; 0 until an epoch completes
        self.epoch = 0  # completed epochs
        self.global_step = 0  # optimizer steps
        self.manual_lr_changes: list[dict] = []
        self.scheduler = None
        self.early_stopping: EarlyStopping | None = None
        self.num_epochs = 0
        self.status = ""
        self.report: dict | None = None
        self._resume: dict | None = None  # mid-epoch state waiting to be applied
        self._process_steps = 0
        self._active_time = 0.0  # seconds of training this process, pauses excluded
        self._paused_time = 0.0

    # ------------------------------------------------------------------ public API
    def emit(self, event: ev.Event) -> None:
        if self.is_main:
            self.events.emit(event)

    @property
    def raw_model(self) -> torch.nn.Module:
        return _unwrap(self.model)

    def train(self, num_epochs: int, scheduler=None, early_stopping: EarlyStopping | None = None,
              ui: str | None = None):
        """Run training; returns (train_losses, train_accs, val_losses, val_accs) like the seed.

        ui: None prints a plain log when no sinks were given; "tui" opens the live console;
        "none" stays silent.
        """
        if ui == "tui":
            from ..frontends.tui.launch import train_in_tui

            return train_in_tui(self, num_epochs, scheduler, early_stopping)
        if ui not in (None, "none", "headless"):
            raise ValueError("ui must be None, 'tui', 'headless' or 'none'")
        if (ui == "headless" or (ui is None and not self.events.sinks)) and self.is_main:
            from ..frontends.headless import HeadlessPrinter

            self.events.add(HeadlessPrinter())
        return self.fit(num_epochs, scheduler, early_stopping)

    def fit(self, num_epochs: int, scheduler=None, early_stopping: EarlyStopping | None = None):
        self.num_epochs = num_epochs
        self.scheduler = scheduler
        self.early_stopping = early_stopping
        try:
            self._fit()
        except BaseException as exc:
            epoch, step = (exc.epoch, exc.step) if isinstance(exc, (NonFiniteLossError, CheckpointWriteError)) \
                else (self.epoch + 1, 0)
            message = str(exc) if isinstance(exc, (NonFiniteLossError, CheckpointWriteError, UserError)) \
                else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, KeyboardInterrupt):
                message = "interrupted"
            if self.dist is not None:  # another rank's recorded error rather than the lost connection
                message = self.dist.describe_failure(exc, message)
            self.status = "failed"
            self.emit(ev.RunFailed(error=message, epoch=epoch, step=step,
                                   last_checkpoint=self._newest_checkpoint()))
            raise
        return self.train_losses, self.train_accs, self.val_losses, self.val_accs

    # ------------------------------------------------------------------ the run
    def _fit(self) -> None:
        if self.save_dir is not None and self.is_main:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            for stale in ckpt.clean_stale_temporaries(self.save_dir):
                self.emit(ev.Notice(level="warning", message=f"removed {stale.name} left by an interrupted save"))
        if self.early_stopping is not None:
            self.early_stopping.sync_epoch(self.epoch)
        self._emit_started()
        run_started = time.perf_counter()
        status, want_report = "finished", True
        first_epoch = self.epoch + 1
        if self.early_stopping is not None and self.early_stopping.stopped:
            # Resumed from the checkpoint of the epoch where early stopping ended the run.
            status, first_epoch = "early_stopped", self.num_epochs + 1
        try:
            for epoch in range(first_epoch, self.num_epochs + 1):
                self._service(epoch, 0)  # a stop asked for between epochs
                if not self._run_epoch(epoch):
                    status = "early_stopped"
                    break
        except _StopTraining as stop:
            status, want_report = STOP_OUTCOMES.get(stop.reason, ("interrupted", False))
        self.status = status
        if want_report:
            self._final_evaluation()
        self.emit(ev.RunFinished(status=status, epochs_completed=self.epoch, best_epoch=self.best_epoch,
                                 best_val_acc=self.best_val_acc, elapsed=time.perf_counter() - run_started,
                                 last_checkpoint=self._newest_checkpoint()))

    def _emit_started(self) -> None:
        raw = self.raw_model
        steps = self.steps_per_epoch()
        opt_steps = math.ceil(steps / self.accum_steps)
        lr = self.optimizer.param_groups[0]["lr"]
        es = self.early_stopping
        device_name = str(self.device)
        if self.device.type == "cuda":
            device_name = torch.cuda.get_device_name(self.device)
        self.emit(ev.RunStarted(
            run_name=self.run_name, run_dir=str(self.save_dir or ""), dataset=self.dataset_name,
            model=self.model_name, num_params=sum(p.numel() for p in raw.parameters()),
            device=str(self.device), device_name=device_name, precision=self.precision.mode,
            num_epochs=self.num_epochs, start_epoch=self.epoch, steps_per_epoch=steps,
            batch_size=getattr(self.train_loader, "batch_size", 0) or 0, accum_steps=self.accum_steps,
            train_size=len(self.train_loader.dataset), val_size=len(self.val_loader.dataset),
            num_classes=self.num_classes or 0, class_names=self.class_names or (),
            optimizer=type(self.optimizer).__name__, lr=lr, scheduler=scheduler_name(self.scheduler),
            weight_decay=float(self.optimizer.param_groups[0].get("weight_decay", 0.0) or 0.0),
            lr_plan=planned_lrs(self.scheduler, self.optimizer, self.num_epochs, self.epoch, opt_steps),
            patience=es.patience if es else 0, min_delta=es.min_delta if es else 0.0,
            restore_best=es.restore_best_weights if es else False, clip_grad=self.clip_grad,
            checkpoint_every=self.checkpoint_every, seed=self.config.get("seed"),
            world_size=self.dist.world_size if self.dist else 1, resumed=self.epoch > 0 or self._resume is not None,
            compiled=self.compiled,
        ))
        if self.compiled:
            self.emit(ev.Notice(level="info", message="torch.compile: the first steps compile the model"))

    def steps_per_epoch(self) -> int:
        n = len(self.train_loader)
        return min(n, self.limit_batches) if self.limit_batches else n

    def _run_epoch(self, epoch: int) -> bool:
        """One epoch end to end. Returns False when early stopping ends the run."""
        t0 = time.perf_counter()
        lr_at_start = self.optimizer.param_groups[0]["lr"]
        train_loss, train_acc, skipped, rate, train_time = self._train_epoch(epoch)
        t1 = time.perf_counter()
        try:
            val_loss, val_acc = self._validate(epoch)
        except _StopValidation:
            # Training of this epoch is done, validation is not: save that point (a resume runs the
            # validation again) and stop now rather than after the whole pass.
            self._service(epoch, self.steps_per_epoch(), sums=self._epoch_sums)
            raise _StopTraining(self.control.stop_reason or "user") from None
        val_time = time.perf_counter() - t1
        self.epoch = epoch
        self._step_scheduler_epoch(epoch, val_loss)
        self.train_losses.append(train_loss)
        self.train_accs.append(train_acc)
        self.val_losses.append(val_loss)
        self.val_accs.append(val_acc)
        self.lrs.append(lr_at_start)
        is_best = val_acc > self.best_val_acc or self.best_epoch == 0
        if is_best:
            self.best_val_acc, self.best_epoch = val_acc, epoch
        self.emit(ev.EpochEnd(
            epoch=epoch, num_epochs=self.num_epochs, train_loss=train_loss, train_acc=train_acc,
            val_loss=val_loss, val_acc=val_acc, lr=lr_at_start, epoch_time=time.perf_counter() - t0,
            train_time=train_time, val_time=val_time, samples_per_sec=rate, is_best=is_best,
            best_epoch=self.best_epoch, best_val_acc=self.best_val_acc, skipped=skipped))
        stop = False
        periodic = bool(self.checkpoint_every) and epoch % self.checkpoint_every == 0
        weights_now = None
        if self.early_stopping is not None and self.early_stopping.restore_best_weights and (is_best or periodic):
            # Should early stopping end the run here, it puts older weights back into the model;
            # best_model.pth and this epoch's checkpoint must hold this epoch's weights.
            weights_now = clone_state_dict(self.raw_model.state_dict())
        if self.early_stopping is not None:
            es = self.early_stopping
            stop = es(val_loss, self.raw_model)
            self.emit(ev.EarlyStopUpdate(
                epoch=epoch, counter=es.counter, patience=es.patience, best_score=es.best_loss,
                best_epoch=es.best_epoch, min_delta=es.min_delta, improved=es.counter == 0,
                triggered=stop))
        if is_best:
            self.save("best_model.pth", "best", model_state=weights_now)
        if periodic:
            self.save(f"checkpoint_epoch_{epoch}.pth", "periodic", model_state=weights_now)
        if not stop:
            # After early stopping restored the best weights, last.pth would no longer hold the
            # state of the final epoch; the periodic and best files already cover that case.
            self.save("last.pth", "last")
        return not stop

    def _step_scheduler_epoch(self, epoch: int, val_loss: float) -> None:
        s = self.scheduler
        if s is None or steps_per_batch(s):
            return
        before = self.optimizer.param_groups[0]["lr"]
        if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau):
            s.step(val_loss)
            after = self.optimizer.param_groups[0]["lr"]
            if after != before:
                self.emit(ev.LrChanged(epoch=epoch, step=self.steps_per_epoch(), old_lr=before,
                                       new_lr=after, reason="plateau"))
        else:
            s.step()

    # ------------------------------------------------------------------ one training epoch
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

        def readback(final: bool) -> None:
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
                        raise NonFiniteLossError(epoch, first_step + i)
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
            if final or window is None or not self.is_main:
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
                        readback(final=True)
                        rate_t0, rate_samples0, rate_paused0 = time.perf_counter(), sums["count"], self._paused_time
                    if dist is not None:
                        dist.exchange_requests(control, samples=sums["count"] + sum(pending_bs))
                    if control.pending:
                        self._service(epoch, step, sums=sums, flush=lambda: readback(final=True))
                now = time.perf_counter()
                if now - last_report >= self.progress_interval or pending_elems > PENDING_ELEMENTS:
                    readback(final=False)
            readback(final=True)
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
            paused_for = time.perf_counter() - t0
            self._paused_time += paused_for
            self.emit(ev.Resumed(epoch=epoch, step=step, paused_for=paused_for))
        requests: Requests = control.take()
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
            raise _StopTraining(requests.stop)

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
        self.manual_lr_changes.append({"epoch": epoch, "step": step, "factor": factor, "lr": new})
        self.emit(ev.LrChanged(epoch=epoch, step=step, old_lr=old, new_lr=new, reason="manual"))

    # ------------------------------------------------------------------ validation and report
    def _stoppable(self, loader):
        control = self.control
        for batch in loader:
            if control.pending and control.stop_reason is not None:
                raise _StopValidation
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
                     "epochs_completed": self.epoch, "status": self.status,
                     "history": self._history_dict()})
        from ..runlog import write_json_atomic

        try:
            write_json_atomic(self.save_dir / "report.json", data)
        except OSError as exc:
            self.emit(ev.Notice(level="error", message=f"could not write report.json: {exc}"))

    # ------------------------------------------------------------------ checkpoints
    def _history_dict(self) -> dict:
        return {"train_loss": list(self.train_losses), "train_acc": list(self.train_accs),
                "val_loss": list(self.val_losses), "val_acc": list(self.val_accs), "lr": list(self.lrs)}

    def state_dict(self, progress: dict | None = None, model_state: dict | None = None) -> dict:
        """Everything needed to continue exactly where training is now (model_state: the
        weights to store instead of the model's current ones)."""
        loader_state = None
        if hasattr(self.train_loader, "state_dict"):
            loader_state = self.train_loader.state_dict(progress["step"] if progress else 0)
        es = self.early_stopping
        return {
            "format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION,
            "epoch": self.epoch, "step_in_epoch": progress["step"] if progress else 0,
            "epoch_sums": progress["sums"] if progress else None,
            "global_step": self.global_step,
            "model_state_dict": model_state if model_state is not None else self.raw_model.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "scheduler_state_dict": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler_state_dict": self.scaler.state_dict() if self.scaler is not None else None,
            "early_stopping": es.state_dict() if es is not None else None,
            "history": self._history_dict(),
            "best_val_acc": self.best_val_acc, "best_epoch": self.best_epoch,
            "manual_lr_changes": list(self.manual_lr_changes),
            "rng": ckpt.capture_rng(), "loader": loader_state,
            "num_classes": self.num_classes, "class_names": list(self.class_names or ()),
            "model_name": self.model_name, "config": self.config,
            "active_time": self._active_time,
            "world_size": self.dist.world_size if self.dist is not None else 1,
        }

    def save(self, filename: str, kind: str, progress: dict | None = None,
             model_state: dict | None = None) -> Path | None:
        if self.save_dir is None:
            return None
        # Every rank reaches each save; each sends rank 0 its random state, for an exact resume.
        rank_rng = self.dist.gather_rng() if self.dist is not None else None
        if not self.is_main:
            return None
        state = self.state_dict(progress, model_state)
        if rank_rng is not None:
            state["rank_rng"] = rank_rng
        if not ckpt.all_finite(state["model_state_dict"]):
            raise NonFiniteLossError(self.epoch + (1 if progress else 0), progress["step"] if progress else 0,
                                     phase="weights")
        path = self.save_dir / filename
        try:
            ckpt.atomic_save(state, path)
        except OSError as exc:
            raise CheckpointWriteError(f"could not write {path}: {exc.strerror or exc}; "
                                       "the previous checkpoint is intact",
                                       self.epoch + (1 if progress else 0), progress["step"] if progress else 0) from None
        self.emit(ev.CheckpointSaved(epoch=self.epoch + (1 if progress else 0), kind=kind, path=str(path),
                                     step=progress["step"] if progress else 0))
        return path

    def save_checkpoint(self, epoch: int, is_best: bool = False) -> None:
        """The seed's method: a periodic checkpoint for (0-based) `epoch`, and best_model.pth."""
        self.save(f"checkpoint_epoch_{epoch + 1}.pth", "periodic")
        if is_best:
            self.save("best_model.pth", "best")

    def load_best_model(self) -> bool:
        if self.save_dir is None:
            return False
        path = self.save_dir / "best_model.pth"
        if self.dist is not None:
            self.dist.barrier()
        if not path.exists():
            return False
        data = ckpt.safe_load(path, map_location=self.device)
        self.raw_model.load_state_dict(data["model_state_dict"])
        self.emit(ev.Notice(level="info", message=f"loaded the best model (epoch {data.get('best_epoch')}, "
                                                  f"val acc {data.get('best_val_acc', 0):.2f}%)"))
        return True

    def load_state_dict(self, data: dict) -> None:
        """Restore a checkpoint made by `state_dict` (call before `fit`)."""
        self.raw_model.load_state_dict(data["model_state_dict"])
        self.optimizer.load_state_dict(data["optimizer_state_dict"])
        if self.scheduler is not None and data.get("scheduler_state_dict") is not None:
            self.scheduler.load_state_dict(data["scheduler_state_dict"])
        if self.scaler is not None and data.get("scaler_state_dict") is not None:
            self.scaler.load_state_dict(data["scaler_state_dict"])
        if self.early_stopping is not None and data.get("early_stopping") is not None:
            self.early_stopping.load_state_dict(data["early_stopping"])
        h = data["history"]
        self.train_losses, self.train_accs = list(h["train_loss"]), list(h["train_acc"])
        self.val_losses, self.val_accs, self.lrs = list(h["val_loss"]), list(h["val_acc"]), list(h["lr"])
        self.best_val_acc, self.best_epoch = data["best_val_acc"], data["best_epoch"]
        self.epoch, self.global_step = data["epoch"], data["global_step"]
        self.manual_lr_changes = list(data.get("manual_lr_changes") or [])
        self._active_time = float(data.get("active_time", 0.0))
        if data.get("loader") is not None and hasattr(self.train_loader, "load_state_dict"):
            self.train_loader.load_state_dict(data["loader"])
        if data.get("step_in_epoch") and data.get("loader") is not None and hasattr(self.train_loader, "load_state_dict"):
            self._resume = {"step": data["step_in_epoch"], "sums": data["epoch_sums"]}
        ckpt.restore_rng(data["rng"])

    def _newest_checkpoint(self) -> str:
        if self.save_dir is None:
            return ""
        last = self.save_dir / "last.pth"
        return str(last) if last.exists() else ""

    # seed-compatible helpers used by the public functions below
    def _epoch_for_api(self, epoch: int):
        self.num_epochs = max(self.num_epochs, epoch)
        loss, acc, *_ = self._train_epoch(epoch)
        return loss, acc


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL = _Null()


def classification_metrics_from_confusion(cm, class_names: Sequence[str] | None = None) -> dict:
    """The scikit-learn metrics for the predictions a confusion matrix stands for."""
    import numpy as np

    n = cm.shape[0]
    rows, cols = np.nonzero(cm)
    counts = cm[rows, cols]
    targets = np.repeat(rows, counts)
    preds = np.repeat(cols, counts)
    result = classification_metrics(targets, preds, n, class_names)
    result["confusion_matrix"] = np.asarray(cm)
    return result


def train_epoch(model, dataloader, criterion, optimizer, device, epoch: int = 0, *, clip_grad: float = 1.0,
                accum_steps: int = 1, amp: str = "off") -> tuple[float, float]:
    """The seed's function: train one epoch; returns (loss averaged per sample, accuracy %)."""
    trainer = Trainer(model, dataloader, dataloader, criterion, optimizer, device, save_dir=None,
                      clip_grad=clip_grad, accum_steps=accum_steps, amp=amp)
    return trainer._epoch_for_api(epoch + 1)


def validate_epoch(model, dataloader, criterion, device) -> tuple[float, float]:
    """The seed's function: evaluate; returns (loss averaged per sample, accuracy %)."""
    targets, preds, loss_sum, count = predict(model, dataloader, device, criterion)
    if not count:
        return float("nan"), 0.0
    return loss_sum / count, 100.0 * float((targets == preds).sum()) / count
