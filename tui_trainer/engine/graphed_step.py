"""The whole training step as one CUDA graph: forward, loss, backward, clipping, the optimizer
step and the step's metrics, replayed per batch with one kernel launch from the host.

GraphedStep has EagerStep's interface (epoch.py), so the epoch loop uses it in place of the
eager step without knowing which it has. How it runs a batch:
- The first full batch fixes the static input buffers (its shape, dtype and memory format);
  every batch of that shape is copied into them (`copy_`, no host sync) and the graph replays.
- The first `warmup_steps` batches run eagerly on a side stream, as torch's CUDA-graph docs
  require (cuDNN picks its algorithms, the optimizer makes its state); the next one is captured
  and replayed.
- A batch of another shape (an epoch's last, partial one) runs the same function eagerly.
- The LR is a device tensor per parameter group (LearningRate.use_device_tensors) that the
  engine's LR owner writes in place at step boundaries, so schedules, pause, stop, the LR keys
  and checkpoints act as they do on the eager path.
- Each step's loss and correct count go into a DeviceMetricRing on the device, inside the
  graph; the loop reads it back a few times a second as it does the eager MetricWindow.

Gradients are zeroed in place at the start of the step (never set to None), so the graph's
backward always writes the same memory; an eager run of the same function gives the same
numbers as OptimizerStep's order (backward into None, step, zero_grad(set_to_none=True)).

`backend` is the seam: CudaGraph captures for real; EagerReplay (tests, on the CPU) keeps the
function at "capture" and runs it at each "replay", so every buffer, copy and bookkeeping line
above runs without a GPU. capture.py decides whether a run uses this at all.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

WARMUP_STEPS = 3  # eager steps on a side stream before the capture, as in torch's docs
RING_STEPS = 1024  # steps of metrics the device keeps between read-backs


class EagerReplay:
    """A stand-in for a CUDA graph where there is none: `capture` keeps the function, `replay`
    runs it eagerly. Tests run the captured path's logic on the CPU through it."""

    def __init__(self, device_lr: bool = False) -> None:
        # device_lr: put the LR in device tensors as a real capture does (fused optimizers on the
        # CPU read a tensor LR too); by default it stays a float
        self.device_lr = device_lr
        self.captures = 0
        self.replays = 0
        self._fn = None

    def side_stream(self):
        return contextlib.nullcontext()

    def capture(self, fn) -> None:
        self.captures += 1
        self._fn = fn

    def replay(self) -> None:
        self.replays += 1
        self._fn()


class CudaGraph:
    """torch.cuda.graph around the step; warm-up on a side stream."""

    device_lr = True

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.graph = None

    @contextlib.contextmanager
    def side_stream(self):
        current = torch.cuda.current_stream(self.device)
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(current)
        with torch.cuda.stream(stream):
            yield
        current.wait_stream(stream)

    def capture(self, fn) -> None:
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: another thread's CUDA call (a checkpoint being written) may run meanwhile
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            fn()

    def replay(self) -> None:
        self.graph.replay()


class DeviceMetricRing:
    """The step metrics of a captured step: one row (loss, correct) per step in a device tensor,
    written at a device-side index, so the graph records them without the host. MetricWindow's
    interface (epoch.py reads both alike)."""

    def __init__(self, device: torch.device, capacity: int = RING_STEPS) -> None:
        self.values = torch.zeros(capacity, 2, device=device)
        self.index = torch.zeros(1, dtype=torch.long, device=device)
        self.max_elements = capacity - 1  # the loop reads back once the ring is full
        self.sizes: list[int] = []
        self.samples = 0

    @property
    def elements(self) -> int:
        return len(self.sizes)

    def __len__(self) -> int:
        return len(self.sizes)

    def record(self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Device work only (capturable): this step's row, then the index moves on."""
        correct = (outputs.detach().argmax(dim=1) == targets).sum()
        row = torch.stack([loss.detach().float(), correct.float()]).view(1, 2)
        self.values.index_copy_(0, self.index, row)
        self.index.add_(1)

    def note(self, size: int) -> None:
        """The host's half of a step: its batch size."""
        self.sizes.append(size)
        self.samples += size

    def read(self) -> tuple[list[float], list[int], int]:
        """(each step's loss, each step's batch size, correct predictions), one transfer."""
        try:
            if not self.sizes:
                return [], [], 0
            rows = self.values[: len(self.sizes)].tolist()
            return [r[0] for r in rows], list(self.sizes), int(sum(r[1] for r in rows))
        finally:
            self.clear()

    def clear(self) -> None:
        self.sizes.clear()
        self.samples = 0
        self.index.zero_()


_CAPTURABLE_WARNING = ".*capturable=True.*"  # torch warns when a capturable optimizer steps uncaptured


class GraphedStep:
    def __init__(self, *, model: torch.nn.Module, criterion, optimizer: torch.optim.Optimizer, clip: float, lr,
                 precision, device: torch.device, backend=None, warmup_steps: int = WARMUP_STEPS,
                 ring_steps: int = RING_STEPS, on_fallback=None) -> None:
        """on_fallback(message): told once if the capture fails (every later step then runs
        eagerly), and once if the batches vary in shape beyond an epoch's short last one (those
        train eagerly); the engine reports each as a Notice."""
        self.model, self.criterion, self.optimizer, self.clip, self.lr = model, criterion, optimizer, clip, lr
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.device = device
        self.backend = backend if backend is not None else CudaGraph(device)
        self.warmup_steps = warmup_steps
        # A captured region must not use autocast's weight-cast cache (torch's CUDA-graph docs).
        dtype = precision.dtype
        self._autocast = (lambda: torch.autocast(precision.device_type, dtype=dtype, cache_enabled=False)) \
            if dtype is not None else contextlib.nullcontext
        self.ring = DeviceMetricRing(device, ring_steps)
        self.static_x: torch.Tensor | None = None
        self.static_y: torch.Tensor | None = None
        self.warm_steps_done = 0
        self.is_captured = False
        self.eager_steps = 0  # batches of another shape, run eagerly
        self.capture_failed = ""  # why, when the capture raised: the rest of the run is eager
        self.on_fallback = on_fallback
        self.odd_batches = 0  # this epoch's batches of another shape than the static buffers'
        self.odd_shapes_told = False
        if self.backend.device_lr:
            lr.use_device_tensors(device)
            for group in optimizer.param_groups:
                if "capturable" in group:
                    group["capturable"] = True  # Adam(W): its step may run inside a graph

    def start_epoch(self) -> DeviceMetricRing:
        self.ring.clear()
        self.odd_batches = 0
        return self.ring

    def __call__(self, state, x: torch.Tensor, y: torch.Tensor, window, step: int, steps: int) -> bool:
        """Train on one batch; always an optimizer step (capture.py refuses accumulation)."""
        sx, sy = self.static_x, self.static_y
        if sx is None or (not self.is_captured and x.shape[0] > sx.shape[0]):
            # The buffers take the largest batch seen before the capture: a run resumed just
            # before an epoch's short last batch sees that one first.
            self.static_x, self.static_y = sx, sy = torch.empty_like(x), torch.empty_like(y)
            self.warm_steps_done = 0
        if (x.shape == sx.shape and y.shape == sy.shape and x.stride() == sx.stride()
                and x.dtype == sx.dtype and y.dtype == sy.dtype and not self.capture_failed):
            sx.copy_(x, non_blocking=True)
            sy.copy_(y, non_blocking=True)
            if self.is_captured:
                self.backend.replay()
            elif self.warm_steps_done < self.warmup_steps:
                with self.backend.side_stream(), _quiet():
                    self._step(sx, sy)
                self.warm_steps_done += 1
            else:
                self._capture_and_step(sx, sy)
        else:
            with _quiet():
                self._step(x, y)
            self.eager_steps += 1
            if not self.capture_failed:
                self._note_odd_batch(x, y, state.epoch + 1, step)
        window.note(y.size(0))
        state.global_step += 1
        if self.lr.per_step:
            self.lr.after_optimizer_step(state)
        return True

    def _note_odd_batch(self, x: torch.Tensor, y: torch.Tensor, epoch: int, step: int) -> None:
        """An epoch's short last batch is expected to run eagerly; a second batch of another
        shape in one epoch means the loader's batches vary (sequences padded per batch, images
        of several sizes), and the run is told once: its header says the step is captured."""
        self.odd_batches += 1
        if self.odd_batches < 2 or self.odd_shapes_told or self.on_fallback is None:
            return
        self.odd_shapes_told = True
        sx, sy = self.static_x, self.static_y
        if x.shape != sx.shape:
            what = f"has shape {_shape(x)}, not the captured step's {_shape(sx)}"
        elif y.shape != sy.shape:
            what = f"has targets of shape {_shape(y)}, not the captured step's {_shape(sy)}"
        else:
            what = "has another memory layout or dtype than the captured step's"
        self.on_fallback(f"training step: batch {step} of epoch {epoch} {what}; "
                         "batches of another shape than the captured one train eagerly")

    def _capture_and_step(self, sx: torch.Tensor, sy: torch.Tensor) -> None:
        try:
            with _quiet():
                self.backend.capture(lambda: self._step(sx, sy))
        except Exception as exc:  # noqa: BLE001 - an op that cannot be captured: eager from here on
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            self.capture_failed = f"{type(exc).__name__}: {detail}"
            if self.on_fallback is not None:
                self.on_fallback(f"training step: capturing it as a CUDA graph failed ({self.capture_failed}); "
                                 "training eagerly from here on")
            with _quiet():
                self._step(sx, sy)  # a failed capture ran nothing: this batch still trains
            return
        self.is_captured = True
        self.backend.replay()

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The step, captured or eager: nothing in it reads anything back to the host."""
        self.optimizer.zero_grad(set_to_none=False)  # in place: the graph's gradients stay where they are
        with self._autocast():
            out = self.model(x)
            loss = self.criterion(out, y)
        loss.backward()
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        self.ring.record(loss, out, y)


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(n) for n in t.shape)


@contextlib.contextmanager
def _quiet():
    """Eager steps of a capturable optimizer (warm-up, a partial batch) are expected here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CAPTURABLE_WARNING)
        yield
