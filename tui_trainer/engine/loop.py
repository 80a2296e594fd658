"""The fit loop: train and validate epochs, checkpoints, schedulers, early stopping, the report.

It reads top to bottom: `fit` runs epochs, `_run_epoch` trains, validates and saves one, and
everything a user can see leaves through `emit`. The Trainer's other parts live beside it:
steps.py (the optimizer steps of an epoch and control requests at step boundaries),
evaluation.py (validation, the final report) and persistence.py (checkpoints).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Sequence

import torch

from .. import events as ev
from ..errors import NonFiniteLossError, UserError
from . import checkpoint as ckpt
from .control import Control
from .early_stopping import MONITORS, EarlyStopping, clone_state_dict, improves
from .evaluation import Evaluation, validate_epoch
from .metrics import classification_metrics_from_confusion
from .outcomes import STOP_OUTCOMES, CheckpointWriteError, StopTraining, StopValidation
from .persistence import Persistence
from .precision import Precision, resolve_precision
from .schedulers import planned_lrs, scheduler_name, steps_per_batch
from .steps import PROGRESS_INTERVAL, StepLoop

__all__ = ["CheckpointWriteError", "Trainer", "classification_metrics_from_confusion", "train_epoch",
           "validate_epoch"]


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DistributedDataParallel


class Trainer(StepLoop, Evaluation, Persistence):
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
                 progress_interval: float = PROGRESS_INTERVAL, compiled: bool = False,
                 monitor: str | None = None) -> None:
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
        self.class_names = tuple(class_names) if class_names else None
        self.num_classes = num_classes or (len(self.class_names) if self.class_names else None)
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
        # The best epoch: by `monitor` (val_loss unless the Trainer or its EarlyStopping says
        # val_acc), ties broken by the other metric. It decides best_model.pth, early stopping,
        # the weights restored and evaluated at the end, and every "best" a view shows.
        if monitor is not None and monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, not {monitor!r}")
        self._monitor_given = monitor
        self.monitor = monitor or "val_loss"
        self.best_val_acc = 0.0  # of the best epoch
        self.best_val_loss: float | None = None
        self.best_epoch = 0  # 1-based; 0 until an epoch completes
        self.epoch = 0  # completed epochs
        self.global_step = 0  # optimizer steps
        self.manual_lr_changes: list[dict] = []  # LR changes nobody planned: manual and plateau
        self.scheduler = None
        self.early_stopping: EarlyStopping | None = None
        self.num_epochs = 0
        self.status = ""
        self.report: dict | None = None
        self._resume: dict | None = None  # mid-epoch state waiting to be applied
        self._epoch_start_lr: float | None = None  # the LR the current epoch began with (its history entry)
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

    def fit(self, num_epochs: int, scheduler=None, early_stopping: EarlyStopping | None = None):
        self.num_epochs = num_epochs
        self.scheduler = scheduler
        self.early_stopping = early_stopping
        self.resolve_monitor()
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

    def resolve_monitor(self) -> str:
        """The one metric behind the best epoch and early stopping: the Trainer's, else its
        EarlyStopping's, else val_loss (ValueError when the two were given different ones)."""
        es = self.early_stopping
        self.monitor = self._monitor_given or (es.monitor if es is not None and es.monitor else "val_loss")
        if es is not None:
            es.watch(self.monitor)
        return self.monitor

    def _is_new_best(self, val_loss: float, val_acc: float) -> bool:
        if self.best_epoch == 0:
            return True
        es = self.early_stopping
        min_delta = es.min_delta if es is not None else 0.0
        if self.monitor == "val_acc":
            return improves("max", val_acc, val_loss, self.best_val_acc, self.best_val_loss, min_delta)
        return improves("min", val_loss, val_acc, self.best_val_loss, self.best_val_acc, min_delta)

    # ------------------------------------------------------------------ the run
    def _fit(self) -> None:
        if self.save_dir is not None and self.is_main:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            for stale in ckpt.clean_stale_temporaries(self.save_dir):
                self.emit(ev.Notice(level="warning", message=f"removed {stale.name} left by an interrupted save"))
        if self.early_stopping is not None:
            self.early_stopping.sync_epoch(self.epoch)
        self._emit_started()
        self.restore_missing_periodic()
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
        except StopTraining as stop:
            status, want_report = STOP_OUTCOMES.get(stop.reason, ("interrupted", False))
        self.status = status
        if want_report:
            self._final_evaluation()
        self.emit(ev.RunFinished(status=status, epochs_completed=self.epoch, best_epoch=self.best_epoch,
                                 best_val_acc=self.best_val_acc, elapsed=time.perf_counter() - run_started,
                                 last_checkpoint=self._newest_checkpoint(), best_val_loss=self.best_val_loss,
                                 monitor=self.monitor))

    def _emit_started(self) -> None:
        raw = self.raw_model
        steps = self.steps_per_epoch()
        opt_steps = math.ceil(steps / self.accum_steps)
        lr = self.optimizer.param_groups[0]["lr"]
        es = self.early_stopping
        resumed = self.epoch > 0 or self._resume is not None
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
            world_size=self.dist.world_size if self.dist else 1, resumed=resumed, compiled=self.compiled,
            monitor=self.monitor, **(self._restored_history() if resumed else {}),
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
        if self._resume is not None and self._resume.get("epoch_start_lr") is not None:
            # resumed mid-epoch: a per-step schedule has moved on since the epoch began
            lr_at_start = self._resume["epoch_start_lr"]
        self._epoch_start_lr = lr_at_start
        train_loss, train_acc, skipped, rate, train_time = self._train_epoch(epoch)
        t1 = time.perf_counter()
        try:
            val_loss, val_acc = self._validate(epoch)
        except StopValidation:
            # Training of this epoch is done, validation is not: save that point (a resume runs the
            # validation again) and stop now rather than after the whole pass.
            self._service(epoch, self.steps_per_epoch(), sums=self._epoch_sums)
            raise StopTraining(self.control.stop_reason or "user") from None
        val_time = time.perf_counter() - t1
        self.epoch = epoch
        self._step_scheduler_epoch(epoch, val_loss)
        self.train_losses.append(train_loss)
        self.train_accs.append(train_acc)
        self.val_losses.append(val_loss)
        self.val_accs.append(val_acc)
        self.lrs.append(lr_at_start)
        is_best = self._is_new_best(val_loss, val_acc)
        if is_best:
            self.best_epoch, self.best_val_acc, self.best_val_loss = epoch, val_acc, val_loss
        self.emit(ev.EpochEnd(
            epoch=epoch, num_epochs=self.num_epochs, train_loss=train_loss, train_acc=train_acc,
            val_loss=val_loss, val_acc=val_acc, lr=lr_at_start, epoch_time=time.perf_counter() - t0,
            train_time=train_time, val_time=val_time, samples_per_sec=rate, is_best=is_best,
            best_epoch=self.best_epoch, best_val_acc=self.best_val_acc, skipped=skipped,
            best_val_loss=self.best_val_loss, monitor=self.monitor))
        stop = False
        periodic = bool(self.checkpoint_every) and epoch % self.checkpoint_every == 0
        es = self.early_stopping
        may_stop = es is not None and es.patience > 0 and es.counter + 1 >= es.patience
        weights_now = None
        if es is not None and es.restore_best_weights and (is_best or periodic or may_stop):
            # Should early stopping end the run here, it puts older weights back into the model;
            # this epoch's checkpoints must hold this epoch's weights.
            weights_now = clone_state_dict(self.raw_model.state_dict())
        if es is not None:
            value, other = (val_acc, val_loss) if self.monitor == "val_acc" else (val_loss, val_acc)
            stop = es.update(is_best, value, self.raw_model, other)  # the same decision as is_best
            self.emit(ev.EarlyStopUpdate(
                epoch=epoch, counter=es.counter, patience=es.patience, best_score=es.best_loss,
                best_epoch=es.best_epoch, min_delta=es.min_delta, monitor=self.monitor, improved=is_best,
                triggered=stop))
        # In this order: a kill between two of these saves leaves the newest complete state in the
        # file written first, and a resume writes a periodic checkpoint the kill left out.
        if is_best:
            self.save("best_model.pth", "best", model_state=weights_now)
        if periodic:
            self.save(f"checkpoint_epoch_{epoch}.pth", "periodic", model_state=weights_now)
        # Also when early stopping ends the run here: last.pth is always the end of the newest
        # epoch, whether or not the run was stopped and resumed within it.
        self.save("last.pth", "last", model_state=weights_now)
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
                step = self.steps_per_epoch()
                self.manual_lr_changes.append({"epoch": epoch, "step": step, "factor": after / before, "lr": after,
                                               "reason": "plateau"})
                self.emit(ev.LrChanged(epoch=epoch, step=step, old_lr=before, new_lr=after, reason="plateau"))
        else:
            s.step()

    # seed-compatible helpers used by the public functions below
    def _epoch_for_api(self, epoch: int):
        self.num_epochs = max(self.num_epochs, epoch)
        loss, acc, *_ = self._train_epoch(epoch)
        return loss, acc


def train_epoch(model, dataloader, criterion, optimizer, device, epoch: int = 0, *, clip_grad: float = 1.0,
                accum_steps: int = 1, amp: str = "off") -> tuple[float, float]:
    """The seed's function: train one epoch; returns (loss averaged per sample, accuracy %)."""
    trainer = Trainer(model, dataloader, dataloader, criterion, optimizer, device, save_dir=None,
                      clip_grad=clip_grad, accum_steps=accum_steps, amp=amp)
    return trainer._epoch_for_api(epoch + 1)


