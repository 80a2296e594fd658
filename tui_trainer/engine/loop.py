"""The fit loop, and `Trainer`: the seed's class, now a facade over composed parts.

`fit` runs epochs; `_run_epoch` trains (epoch.py), validates (evaluation.py), decides the best
epoch, early stopping and the LR, and queues the epoch's checkpoints (checkpointing.py).
Everything the loop advances is in `TrainState`; every part with state is registered once in
`stateful_parts` (a checkpoint is that registry's state); the process it runs in is one
interface whether alone or under torchrun (process.py); the LR has one owner (learning_rate.py).
Everything a user can see leaves through `emit`.
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
from ..vocab import Status
from . import checkpoint as ckpt
from .boundary import StepBoundary
from .capture import CaptureDecision, CaptureInputs, decide_capture
from .checkpointing import Checkpointing
from .control import Control
from .early_stopping import MONITORS, EarlyStopping
from .epoch import PROGRESS_INTERVAL, EpochLoop, OptimizerStep
from .evaluation import Validator, validate_epoch
from .final_report import FinalReport
from .learning_rate import LearningRate, TorchSchedule
from .metrics import classification_metrics_from_confusion
from .outcomes import CheckpointWriteError, StopTraining, StopValidation
from .parts import LoaderState, OptimizerState, RandomState, StatefulParts
from .precision import Precision, resolve_precision
from .process import SingleProcess
from .schedulers import scheduler_name
from .throughput import Throughput
from .train_state import TrainState

__all__ = ["CheckpointWriteError", "Trainer", "classification_metrics_from_confusion", "train_epoch",
           "validate_epoch"]


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
                 progress_interval: float = PROGRESS_INTERVAL, compiled: bool = False,
                 monitor: str | None = None, cuda_graphs: str = "auto", capture_backend=None) -> None:
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
        self.process = dist if dist is not None else SingleProcess()
        self.is_main = self.process.is_main
        self.progress_interval = progress_interval
        self.compiled = compiled
        # --cuda-graphs: whether the training step is captured (capture.py decides, per fit).
        # capture_backend: a stand-in for CUDA graphs (graphed_step.EagerReplay) that runs the
        # captured path's logic on any device; for tests.
        self.cuda_graphs = cuda_graphs
        self.capture_backend = capture_backend
        self.capture: CaptureDecision | None = None
        # The best epoch: by `monitor` (val_loss unless the Trainer or its EarlyStopping says
        # val_acc), ties broken by the other metric. It decides best_model.pth, early stopping,
        # the weights restored and reported at the end, and every "best" a view shows.
        if monitor is not None and monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, not {monitor!r}")
        self._monitor_given = monitor
        self.state = TrainState(monitor=monitor or "val_loss")
        self._base_lrs = [group["lr"] for group in optimizer.param_groups]  # as built: a checkpoint never changes them
        self.scheduler = None
        self.early_stopping: EarlyStopping | None = None
        self.num_epochs = 0
        self.status: Status | str = ""
        self.report: dict | None = None
        self.throughput = Throughput()
        self.checkpointing = Checkpointing(self.save_dir, checkpoint_every, self.process, self.emit, self._header)

    # ------------------------------------------------------------------ the seed's names
    @property
    def scheduler(self):
        return self._scheduler

    @scheduler.setter
    def scheduler(self, scheduler) -> None:
        """A built-in schedule, a torch scheduler (stepped as torch's are) or None."""
        self._scheduler = scheduler
        self.lr = LearningRate(self.optimizer, scheduler, self._base_lrs)

    epoch = property(lambda self: self.state.epoch)  # completed epochs
    global_step = property(lambda self: self.state.global_step)  # optimizer steps
    best_epoch = property(lambda self: self.state.best_epoch)
    best_val_acc = property(lambda self: self.state.best_val_acc)
    best_val_loss = property(lambda self: self.state.best_val_loss)
    monitor = property(lambda self: self.state.monitor)
    train_losses = property(lambda self: self.state.history.train_loss)
    train_accs = property(lambda self: self.state.history.train_acc)
    val_losses = property(lambda self: self.state.history.val_loss)
    val_accs = property(lambda self: self.state.history.val_acc)
    lrs = property(lambda self: self.state.history.lr)
    manual_lr_changes = property(lambda self: self.state.lr_changes)

    @property
    def dist(self):
        return None if isinstance(self.process, SingleProcess) else self.process

    @property
    def raw_model(self) -> torch.nn.Module:
        return _unwrap(self.model)

    def emit(self, event: ev.Event) -> None:
        if self.is_main:
            self.events.emit(event)

    def steps_per_epoch(self) -> int:
        n = len(self.train_loader)
        return min(n, self.limit_batches) if self.limit_batches else n

    # ------------------------------------------------------------------ state and checkpoints
    def stateful_parts(self) -> StatefulParts:
        """Everything a checkpoint holds, each part once; TrainState's fields are the top-level keys."""
        parts = StatefulParts(root=self.state)
        parts.register("model_state_dict", self.raw_model, live=True)
        parts.register("optimizer_state_dict", OptimizerState(self.optimizer), live=True)
        parts.register("scheduler_state_dict", self.lr)
        parts.register("scaler_state_dict", self.scaler)
        parts.register("early_stopping", self.early_stopping)
        parts.register("loader", LoaderState(self.train_loader, self.state))
        parts.register("rng", RandomState())  # last: restoring it must be the last thing a load does
        return parts

    def _header(self) -> dict:
        return {"format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION, "num_classes": self.num_classes,
                "class_names": list(self.class_names or ()), "model_name": self.model_name, "config": self.config,
                "world_size": self.process.world_size}

    def state_dict(self) -> dict:
        """Everything needed to continue exactly where training is now (a checkpoint's contents)."""
        return {**self.stateful_parts().state_dict(), **self._header()}

    def load_state_dict(self, data: dict) -> None:
        """Restore a checkpoint (call before `fit`); one from an earlier version is converted."""
        data = ckpt.upgrade(data)
        loaded = self.stateful_parts().load_state_dict(data)
        if self.state.step_in_epoch and "loader" not in loaded:
            self.state.restart_epoch()  # the data order cannot resume mid-epoch: the epoch starts over
        if not self.is_main:
            self.state.sums = type(self.state.sums)()  # the saved sums are every rank's: the main one carries them
        self.checkpointing.best_weights = None  # the best model is the checkpoint's now

    def save_checkpoint(self, epoch: int, is_best: bool = False) -> None:
        """The seed's method: a periodic checkpoint for (0-based) `epoch`, and best_model.pth."""
        files = [(f"checkpoint_epoch_{epoch + 1}.pth", "periodic")] + ([("best_model.pth", "best")] if is_best else [])
        self.checkpointing.save(self.stateful_parts(), self.state, files, wait=True)

    def load_best_model(self) -> bool:
        """The seed's method: put best_model.pth's weights into the model."""
        return self.checkpointing.load_best(self.raw_model, self.device)

    # ------------------------------------------------------------------ running
    def fit(self, num_epochs: int, scheduler=None, early_stopping: EarlyStopping | None = None):
        self.num_epochs = num_epochs
        if scheduler is not self._scheduler:
            self.scheduler = scheduler
        self.early_stopping = early_stopping
        self.resolve_monitor()
        try:
            self._fit()
        except BaseException as exc:
            self.checkpointing.abandon()  # a write under way finishes first: the process never exits mid-write
            self._report_failure(exc)
            raise
        return self.train_losses, self.train_accs, self.val_losses, self.val_accs

    def resolve_monitor(self) -> str:
        """The one metric behind the best epoch and early stopping: the Trainer's, else its
        EarlyStopping's, else val_loss (ValueError when the two were given different ones)."""
        es = self.early_stopping
        self.state.monitor = self._monitor_given or (es.monitor if es is not None and es.monitor else "val_loss")
        if es is not None:
            es.watch(self.state.monitor)
        return self.state.monitor

    def _report_failure(self, exc: BaseException) -> None:
        known = isinstance(exc, (NonFiniteLossError, CheckpointWriteError))
        epoch, step = (exc.epoch, exc.step) if known else (self.state.epoch + 1, 0)
        message = str(exc) if known or isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, KeyboardInterrupt):
            message = "interrupted"
        # under torchrun, another rank's recorded error rather than the lost connection
        message = self.process.describe_failure(exc, message)
        self.status = Status.FAILED
        self.failure = message  # as the record says it (the launcher's last line repeats it)
        self.emit(ev.RunFailed(error=message, epoch=epoch, step=step, last_checkpoint=self.checkpointing.newest()))

    def decide_capture(self) -> CaptureDecision:
        """Whether this run's training step is captured as a CUDA graph, and why (capture.py)."""
        groups, loader = self.optimizer.param_groups, self.train_loader
        return decide_capture(CaptureInputs(
            requested=self.cuda_graphs, device_type="cuda" if self.capture_backend is not None else self.device.type,
            precision=self.precision.mode, accum_steps=self.accum_steps, world_size=self.process.world_size,
            optimizer=type(self.optimizer).__name__, optimizer_fused=all(g.get("fused") for g in groups),
            compiled=self.compiled, own_scheduler=isinstance(self.lr.schedule, TorchSchedule),
            skip_nan=self.on_nan == "skip", fixed_batch_size=getattr(loader, "batch_size", None) is not None))

    def _train_step(self, optimizer_step: OptimizerStep):
        """The captured step when the decision says so; None: the epoch loop's eager step."""
        self.capture = self.decide_capture()
        if not self.capture.captured:
            return None
        from .graphed_step import GraphedStep

        return GraphedStep(model=self.model, criterion=self.criterion, optimizer=self.optimizer, clip=self.clip_grad,
                           lr=self.lr, precision=self.precision, device=self.device, backend=self.capture_backend,
                           on_fallback=lambda text: self.emit(ev.Notice(level="warning", message=text)))

    def _assemble(self) -> None:
        """The parts of this run, given what each needs."""
        self._parts = self.stateful_parts()
        optimizer_step = OptimizerStep(self.model, self.optimizer, self.scaler, self.clip_grad, self.lr)
        self._boundary = StepBoundary(control=self.control, process=self.process, lr=self.lr,
                                      checkpointing=self.checkpointing, parts=self._parts,
                                      throughput=self.throughput, device=self.device, emit=self.emit)
        self._epoch_loop = EpochLoop(
            model=self.model, loader=self.train_loader, criterion=self.criterion,
            step=optimizer_step, train_step=self._train_step(optimizer_step),
            scaler=self.scaler, autocast=self.precision.autocast, device=self.device, steps=self.steps_per_epoch(),
            accum_steps=self.accum_steps, skip_nan=self.on_nan == "skip", channels_last=self.channels_last,
            process=self.process, control=self.control, boundary=self._boundary, checkpointing=self.checkpointing,
            throughput=self.throughput, lr=self.lr, emit=self.emit, progress_interval=self.progress_interval)
        self._validator = Validator(self.val_loader, self.criterion, self.device, self.precision.autocast,
                                    self.process, limit_batches=self.limit_batches,
                                    channels_last=self.channels_last, num_classes=self.num_classes)
        self._report = FinalReport(checkpointing=self.checkpointing, validator=self._validator,
                                   class_names=self.class_names, emit=self.emit)

    def _fit(self) -> None:
        state, es = self.state, self.early_stopping
        self._assemble()
        self.checkpointing.prepare()
        if es is not None:
            es.sync_epoch(state.epoch)
        resumed_mid_epoch = state.step_in_epoch > 0
        self._report.validated(state.epoch, None)  # the model holds the weights of the state it resumes
        self.lr.apply(state)
        self._emit_started()
        self.checkpointing.restore_missing_periodic(self._parts, state, resumed_mid_epoch)
        run_started, start_epoch = time.perf_counter(), state.epoch
        status, want_report = Status.FINISHED, True
        first_epoch = state.epoch + 1
        if es is not None and es.stopped:
            # Resumed from the checkpoint of the epoch where early stopping ended the run.
            status, first_epoch = Status.EARLY_STOPPED, self.num_epochs + 1
        try:
            for epoch in range(first_epoch, self.num_epochs + 1):
                self._boundary.service(state, epoch, 0)  # a stop asked for between epochs
                if not self._run_epoch(epoch):
                    status = Status.EARLY_STOPPED
                    break
        except StopTraining as stop:
            status, want_report = stop.reason.status, stop.reason.report
        self.status = status
        report = None
        if want_report and state.epoch > 0:  # a run stopped before its first epoch ended has nothing to report
            report, self.report = self._report.make(state, self.model, self.raw_model, self.device)
        self.checkpointing.finish()  # the report was worked out while the last checkpoints were written
        if report is not None and self.save_dir is not None and self.is_main:
            self._report.write(self.save_dir / "report.json", report, state, status)
        self.emit(ev.RunFinished(status=status, epochs_completed=state.epoch, best_epoch=state.best_epoch,
                                 best_val_acc=state.best_val_acc, elapsed=time.perf_counter() - run_started,
                                 last_checkpoint=self.checkpointing.newest(), best_val_loss=state.best_val_loss,
                                 monitor=state.monitor, start_epoch=start_epoch))

    def _run_epoch(self, epoch: int) -> bool:
        """One epoch end to end. Returns False when early stopping ends the run."""
        state, t0 = self.state, time.perf_counter()
        state.begin_epoch(self.lr.current)
        lr_at_start = state.epoch_start_lr
        trained = self._epoch_loop.run(state, epoch, self.num_epochs)
        state.active_time += trained.seconds
        t1 = time.perf_counter()
        self.emit(ev.ValidationStarted(epoch=epoch, steps=self._validator.steps))
        try:
            result = self._validator.run(self.model, self.control, epoch)
        except StopValidation:
            # Training of this epoch is done, validation is not: save that point (a resume runs the
            # validation again) and stop now rather than after the whole pass.
            self._boundary.service(state, epoch, state.step_in_epoch)
            raise StopTraining(self.control.stop_reason or "user") from None
        val_time = time.perf_counter() - t1
        min_delta = self.early_stopping.min_delta if self.early_stopping is not None else 0.0
        is_best = state.end_epoch(epoch, trained.loss, trained.accuracy, result, min_delta)
        self._report.validated(epoch, result)
        self._lr_after_epoch(epoch, result.loss)
        self.emit(ev.EpochEnd(
            epoch=epoch, num_epochs=self.num_epochs, train_loss=trained.loss, train_acc=trained.accuracy,
            val_loss=result.loss, val_acc=result.accuracy, lr=lr_at_start, epoch_time=time.perf_counter() - t0,
            train_time=trained.seconds, val_time=val_time, samples_per_sec=trained.samples_per_sec,
            is_best=is_best, best_epoch=state.best_epoch, best_val_acc=state.best_val_acc, skipped=trained.skipped,
            best_val_loss=state.best_val_loss, monitor=state.monitor))
        weights = self.checkpointing.snapshot_weights(self.raw_model, is_best)  # before early stopping restores older ones
        stop = self._early_stopping_update(epoch, is_best, result)
        # Also when early stopping ends the run here: last.pth is always the end of the newest epoch.
        self.checkpointing.save_epoch(self._parts, state, is_best, weights)
        return not stop

    def _lr_after_epoch(self, epoch: int, val_loss: float) -> None:
        old, new = self.lr.end_epoch(self.state, val_loss)
        if new != old and self.lr.schedule.watches_val_loss:  # a change nobody planned (plateau)
            step = self.steps_per_epoch()
            self.state.lr_changes.append({"epoch": epoch, "step": step, "factor": new / old, "lr": new,
                                          "reason": "plateau"})
            self.emit(ev.LrChanged(epoch=epoch, step=step, old_lr=old, new_lr=new, reason="plateau"))

    def _early_stopping_update(self, epoch: int, is_best: bool, result) -> bool:
        es = self.early_stopping
        if es is None:
            return False
        value, other = (result.accuracy, result.loss) if self.monitor == "val_acc" else (result.loss, result.accuracy)
        stop = es.update(is_best, value, self.raw_model, other)  # the same decision as is_best
        if stop and es.restore_best_weights and es.best_weights is not None:
            self._report.validated(self.state.best_epoch, None)  # early stopping put the best weights back
        self.emit(ev.EarlyStopUpdate(
            epoch=epoch, counter=es.counter, patience=es.patience, best_score=es.best_loss,
            best_epoch=es.best_epoch, min_delta=es.min_delta, monitor=self.monitor, improved=is_best,
            triggered=stop))
        return stop

    # ------------------------------------------------------------------ start and end
    def _emit_started(self) -> None:
        state, es, raw = self.state, self.early_stopping, self.raw_model
        steps = self.steps_per_epoch()
        resumed = state.epoch > 0 or state.step_in_epoch > 0
        device_name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else str(self.device)
        self.emit(ev.RunStarted(
            run_name=self.run_name, run_dir=str(self.save_dir or ""), dataset=self.dataset_name,
            model=self.model_name, num_params=sum(p.numel() for p in raw.parameters()),
            device=str(self.device), device_name=device_name, precision=self.precision.mode,
            num_epochs=self.num_epochs, start_epoch=state.epoch, steps_per_epoch=steps,
            batch_size=getattr(self.train_loader, "batch_size", 0) or 0, accum_steps=self.accum_steps,
            train_size=len(self.train_loader.dataset), val_size=len(self.val_loader.dataset),
            num_classes=self.num_classes or 0, class_names=self.class_names or (),
            optimizer=type(self.optimizer).__name__, lr=self.lr.current, scheduler=scheduler_name(self._scheduler),
            weight_decay=float(self.optimizer.param_groups[0].get("weight_decay", 0.0) or 0.0),
            lr_plan=self.lr.plan(state, self.num_epochs, math.ceil(steps / self.accum_steps)),
            patience=es.patience if es else 0, min_delta=es.min_delta if es else 0.0,
            restore_best=es.restore_best_weights if es else False, clip_grad=self.clip_grad,
            checkpoint_every=self.checkpoint_every, seed=self.config.get("seed"),
            world_size=self.process.world_size, resumed=resumed, compiled=self.compiled, monitor=state.monitor,
            training_step=self.capture.header(self.device.type) if self.capture is not None else "",
            **(state.restored_history(steps, es.counter if es is not None else 0) if resumed else {}),
        ))
        if self.compiled:
            self.emit(ev.Notice(level="info", message="torch.compile: the first steps compile the model"))
        if self.capture is not None and self.capture.fallback:
            self.emit(ev.Notice(level="warning" if self.capture.requested == "on" else "info",
                                message=f"training step: {self.capture.label}"))

    # seed-compatible helper used by train_epoch below
    def _epoch_for_api(self, epoch: int) -> tuple[float, float]:
        self.num_epochs = max(self.num_epochs, epoch)
        self._assemble()
        totals = self._epoch_loop.run(self.state, epoch, self.num_epochs)
        self.state.restart_epoch()
        return totals.loss, totals.accuracy


def train_epoch(model, dataloader, criterion, optimizer, device, epoch: int = 0, *, clip_grad: float = 1.0,
                accum_steps: int = 1, amp: str = "off") -> tuple[float, float]:
    """The seed's function: train one epoch; returns (loss averaged per sample, accuracy %)."""
    trainer = Trainer(model, dataloader, dataloader, criterion, optimizer, device, save_dir=None,
                      clip_grad=clip_grad, accum_steps=accum_steps, amp=amp)
    return trainer._epoch_for_api(epoch + 1)
