"""The two training loops the benchmarks compare, timed the same way.

- `plain_epoch`: the seed's basic loop written by hand (to(device), forward, loss,
  zero_grad, backward, optional clip, step) over whatever loader it is given. It keeps no
  metrics during training, so it is the cheapest possible loop: the bar the engine is held to.
- `engine_epochs`: our `Trainer.fit` on the same model, data and optimizer. An
  `EpochStopwatch` sink (first in the sink list, so any other sink's cost counts against the
  engine) reads `time.perf_counter()` when the engine announces an epoch, its validation
  and its end; the engine's own timing is not used.

Both sides run on the calling thread: the engine is driven directly, not from a worker.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch

from _common import ensure_repo_importable

ensure_repo_importable()

from tui_trainer.engine import Trainer  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class EpochStopwatch:
    """A sink that times each epoch's training pass (EpochStarted -> ValidationStarted) and the
    whole epoch with validation (EpochStarted -> EpochEnd)."""

    train_s: list[float] = field(default_factory=list)
    epoch_s: list[float] = field(default_factory=list)
    reported_rate: list[float] = field(default_factory=list)
    _t0: float = 0.0

    def emit(self, event) -> None:
        name = type(event).__name__
        if name == "EpochStarted":
            self._t0 = time.perf_counter()
        elif name == "ValidationStarted":
            self.train_s.append(time.perf_counter() - self._t0)
        elif name == "EpochEnd":
            self.epoch_s.append(time.perf_counter() - self._t0)
            self.reported_rate.append(event.samples_per_sec)


@dataclass
class Side:
    """One side of a comparison: its own model copy and optimizer, trained across trials."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    criterion: torch.nn.Module


def make_sides(model: torch.nn.Module, make_optimizer, names=("engine", "plain")) -> dict[str, Side]:
    """Identical copies of `model` (same initial weights), each with a fresh optimizer."""
    sides = {}
    for name in names:
        m = copy.deepcopy(model)
        sides[name] = Side(m, make_optimizer(m.parameters()), torch.nn.CrossEntropyLoss())
    return sides


def plain_epoch(side: Side, loader, device: torch.device, clip: float, *, val_loader=None,
                autocast_dtype: torch.dtype | None = None, channels_last: bool = False,
                model: torch.nn.Module | None = None, engine_grads: bool = False) -> tuple[float, float]:
    """One epoch of the hand-written loop; returns (training seconds, seconds with validation).

    `model` overrides side.model (e.g. a torch.compile'd wrapper of it). engine_grads: clip and
    clear the gradients with the engine's grads.py (the same numbers, less work per call)
    instead of clip_grad_norm_ and zero_grad, so that only the engine's bookkeeping differs.
    """
    model = model if model is not None else side.model
    opt, criterion = side.optimizer, side.criterion
    if engine_grads:
        from tui_trainer.engine.grads import GradClipper, clear_grads

        clipper = GradClipper(model)
    else:
        clipper = clear_grads = None
    use_autocast = autocast_dtype is not None
    synchronize(device)
    t0 = time.perf_counter()
    model.train()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if use_autocast:
            with torch.autocast(device.type, dtype=autocast_dtype):
                out = model(x)
                loss = criterion(out, y)
        else:  # no context manager at all in full precision: the cheapest loop
            out = model(x)
            loss = criterion(out, y)
        if clear_grads is None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        else:
            clear_grads(opt)
            loss.backward()
            if clip > 0:
                clipper(clip)
        opt.step()
    synchronize(device)
    t1 = time.perf_counter()
    if val_loader is not None:
        model.eval()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        with torch.inference_mode():
            for x, y in val_loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=use_autocast):
                    out = model(x)
                loss_sum += torch.nn.functional.cross_entropy(out.float(), y, reduction="sum")
                correct += (out.argmax(1) == y).sum()
        float(loss_sum), int(correct)  # read back once, as any loop reporting val metrics must
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0


class PlainCapturedLoop:
    """The whole step captured by hand, as torch's CUDA-graph docs write it: static input
    buffers, three warm-up steps on a side stream, one capture of forward, loss, backward,
    clipping and a capturable fused optimizer step (LR a device tensor), then per batch a copy
    into the buffers and a replay; a batch of another shape runs eagerly. No metrics are kept.
    On the CPU (--device cpu --quick) the same code runs the step function where it would replay."""

    def __init__(self, side: Side, device: torch.device, clip: float, *, autocast_dtype=None,
                 channels_last: bool = False, warmup: int = 3) -> None:
        self.side, self.device, self.clip, self.channels_last, self.warmup = side, device, clip, channels_last, warmup
        self.autocast_dtype = autocast_dtype
        self.static = None
        self.graph = None
        self.warm = 0
        self.params = list(side.model.parameters())
        for group in side.optimizer.param_groups:
            if device.type == "cuda":
                group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
            if "capturable" in group:
                group["capturable"] = device.type == "cuda"

    def _step(self, x, y) -> None:
        opt, model = self.side.optimizer, self.side.model
        opt.zero_grad(set_to_none=False)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None,
                            cache_enabled=False):
            loss = self.side.criterion(model(x), y)
        loss.backward()
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        opt.step()

    def epoch(self, loader) -> float:
        device, cuda = self.device, self.device.type == "cuda"
        synchronize(device)
        t0 = time.perf_counter()
        self.side.model.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.static is None:
                self.static = (torch.empty_like(x), torch.empty_like(y))
            sx, sy = self.static
            if x.shape != sx.shape:
                self._step(x, y)
                continue
            sx.copy_(x, non_blocking=True)
            sy.copy_(y, non_blocking=True)
            if self.graph is not None:
                self.graph.replay()
            elif not cuda:
                self._step(sx, sy)  # the CPU: no graph to capture
            elif self.warm < self.warmup:
                stream = torch.cuda.Stream(device)
                stream.wait_stream(torch.cuda.current_stream(device))
                with torch.cuda.stream(stream):
                    self._step(sx, sy)
                torch.cuda.current_stream(device).wait_stream(stream)
                self.warm += 1
            else:
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):
                    self._step(sx, sy)
                self.graph.replay()
        synchronize(device)
        return time.perf_counter() - t0


def engine_epochs(side: Side, loader, val_loader, device: torch.device, clip: float, epochs: int, *,
                  extra_sinks=(), amp: str = "off", channels_last: bool = False,
                  model: torch.nn.Module | None = None, compiled: bool = False,
                  num_classes: int = 10, cuda_graphs: str = "off", capture_backend=None) -> EpochStopwatch:
    """`epochs` epochs of `Trainer.fit` (no checkpoints, no console); returns the stopwatch.
    cuda_graphs="on" captures the step (capture_backend: graphed_step.EagerReplay on the CPU)."""
    watch = EpochStopwatch()
    trainer = Trainer(model if model is not None else side.model, loader, val_loader, side.criterion, side.optimizer, device,
                      save_dir=None, sinks=[watch, *extra_sinks], clip_grad=clip, amp=amp,
                      checkpoint_every=0, num_classes=num_classes, channels_last=channels_last,
                      compiled=compiled, cuda_graphs=cuda_graphs, capture_backend=capture_backend)
    trainer.fit(epochs)
    if cuda_graphs == "on" and trainer.capture is not None and not trainer.capture.captured:
        raise RuntimeError(f"the engine did not capture: {trainer.capture.reason}")
    return watch


def seed_api_run(side: Side, loader, val_loader, device: torch.device, epochs: int, save_dir) -> float:
    """`Trainer(..., save_dir).train(epochs)` as the seed's script calls it: the plain log (sent to
    /dev/null here), config.json, events.jsonl, checkpoints after every epoch, the final report and
    report.json. Returns the wall time of the call."""
    import contextlib
    import os

    from tui_trainer import Trainer as PublicTrainer  # the seed's Trainer, with train()

    trainer = PublicTrainer(side.model, loader, val_loader, side.criterion, side.optimizer, device, save_dir)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        synchronize(device)
        t0 = time.perf_counter()
        trainer.train(epochs)
        synchronize(device)
        return time.perf_counter() - t0
