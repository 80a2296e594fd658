"""The event stream: small frozen dataclasses the engine emits, and the Sink protocol.

Events carry data only (never the trainer or the model) and serialise to one JSON object
each. Every view - the run log, the headless printer, the TUI's RunState - is built from
this stream, so a finished run's `events.jsonl` can be replayed into the same screens.

Epochs and steps are 1-based, as a person counts them. Every event has `t`, the wall-clock
time it was made; views compute durations from `t`, so scripted event lists are deterministic.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, runtime_checkable


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Event:
    t: float = field(default_factory=_now, kw_only=True)

    @property
    def event_name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Preparing(Event):
    """Start-up stage before training: 'loading torch', 'loading data', 'building model', 'compiling'."""

    stage: str
    detail: str = ""


@dataclass(frozen=True)
class RunStarted(Event):
    run_name: str
    run_dir: str
    dataset: str
    model: str
    num_params: int
    device: str
    device_name: str
    precision: str
    num_epochs: int
    start_epoch: int  # epochs already done (0 for a new run, k when resuming after epoch k)
    steps_per_epoch: int
    batch_size: int
    accum_steps: int
    train_size: int
    val_size: int
    num_classes: int
    class_names: tuple[str, ...]
    optimizer: str
    lr: float
    scheduler: str
    weight_decay: float = 0.0
    # The planned LR: (epoch position, lr) pairs, epoch position as a float from 0 to num_epochs;
    # empty when the schedule cannot be known ahead (plateau).
    lr_plan: tuple[tuple[float, float], ...] = ()
    patience: int = 0
    min_delta: float = 0.0
    restore_best: bool = True
    clip_grad: float = 0.0
    checkpoint_every: int = 0
    seed: int | None = None
    world_size: int = 1
    resumed: bool = False
    compiled: bool = False
    # How the training step runs when that is worth saying (--cuda-graphs): "captured as a CUDA
    # graph (...)" or "eager (the reason)"; empty for an eager run on a CPU that asked nothing.
    training_step: str = ""
    # The metric that decides the best epoch and early stopping. Logs written before it existed
    # watched val_loss for early stopping (and chose the best epoch by val_acc, see EpochEnd).
    monitor: str = "val_loss"
    # A resumed run: what the epochs before the resume left (restored from the checkpoint), so
    # that every view shows the whole run. Empty for a new run, and in logs older than these fields.
    history_train_loss: tuple[float, ...] = ()
    history_train_acc: tuple[float, ...] = ()
    history_val_loss: tuple[float, ...] = ()
    history_val_acc: tuple[float, ...] = ()
    history_lr: tuple[float, ...] = ()  # the LR each epoch ran with
    best_epoch: int = 0
    best_val_acc: float | None = None
    best_val_loss: float | None = None
    lr_changes: tuple[tuple[float, float, str], ...] = ()  # unplanned: (epoch position, new lr, reason)
    early_stop_counter: int = 0  # epochs without improvement so far


@dataclass(frozen=True)
class EpochStarted(Event):
    epoch: int
    num_epochs: int
    steps: int


@dataclass(frozen=True)
class StepProgress(Event):
    """Coalesced training progress, emitted a few times per second (not every step)."""

    epoch: int
    step: int
    steps: int
    samples: int  # training samples seen this epoch
    loss: float  # mean loss over the steps since the previous StepProgress
    acc: float  # accuracy (%) over those steps
    epoch_loss: float  # running mean over the epoch so far
    epoch_acc: float
    lr: float
    samples_per_sec: float  # paused time and warm-up steps excluded
    elapsed: float  # active training seconds this run (pauses excluded)
    skipped: int = 0  # batches skipped this epoch (non-finite loss with --on-nan skip, fp16 overflow)


@dataclass(frozen=True)
class ValidationStarted(Event):
    epoch: int
    steps: int


@dataclass(frozen=True)
class EpochEnd(Event):
    epoch: int
    num_epochs: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float  # the LR used during this epoch
    epoch_time: float
    train_time: float
    val_time: float
    samples_per_sec: float
    is_best: bool
    best_epoch: int
    best_val_acc: float  # of the best epoch
    skipped: int = 0
    best_val_loss: float | None = None  # of the best epoch
    # What chose the best epoch (ties broken by the other metric). Logs written before the
    # field existed chose it by val_acc, first tie winning.
    monitor: str = "val_acc"


@dataclass(frozen=True)
class EarlyStopUpdate(Event):
    epoch: int
    counter: int
    patience: int
    best_score: float
    best_epoch: int
    min_delta: float
    monitor: str = "val_loss"
    improved: bool = False
    triggered: bool = False


@dataclass(frozen=True)
class CheckpointSaved(Event):
    epoch: int
    kind: str  # best | periodic | last | manual
    path: str
    step: int = 0  # step within the epoch for a mid-epoch save, 0 at an epoch boundary


@dataclass(frozen=True)
class LrChanged(Event):
    epoch: int
    step: int
    old_lr: float
    new_lr: float
    reason: str  # plateau | manual


@dataclass(frozen=True)
class Paused(Event):
    epoch: int
    step: int


@dataclass(frozen=True)
class Resumed(Event):
    epoch: int
    step: int
    paused_for: float


@dataclass(frozen=True)
class StopRequested(Event):
    reason: str  # user | signal | quit


@dataclass(frozen=True)
class Notice(Event):
    level: str  # info | warning | error
    message: str


@dataclass(frozen=True)
class LrFound(Event):
    """The LR range test that `run --lr find` ran before training: the run trains with `lr`
    (the valley, else the steepest descent), both kept in the run's lr_find.json."""

    lr: float
    steepest: float | None
    valley: float | None
    lr_min: float
    lr_max: float
    steps: int  # planned
    steps_done: int
    stopped_early: bool  # the smoothed loss passed 4x its minimum


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    utilization: float | None  # percent
    memory_used: int | None  # bytes
    memory_total: int | None
    temperature: float | None  # degrees C
    power_draw: float | None  # watts
    power_limit: float | None


@dataclass(frozen=True)
class SystemSample(Event):
    cpu_percent: float
    ram_used: int
    ram_total: int
    process_rss: int
    gpus: tuple[GpuSample, ...] = ()
    gpu_error: str = ""  # why no GPU is shown ("no NVIDIA driver", ...); empty when GPUs are listed
    # Under torchrun: each rank's training samples/s over its last second or so, in rank order
    # (empty for a single process). `gpus` lists every GPU of rank 0's node.
    rank_samples_per_sec: tuple[float, ...] = ()


@dataclass(frozen=True)
class EvaluationReport(Event):
    """The final evaluation (the seed's evaluate_classification), on the validation split."""

    split: str
    loss: float
    accuracy: float  # fraction 0..1, as scikit-learn reports it
    precision: float  # weighted
    recall: float
    f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    class_names: tuple[str, ...]
    per_class_precision: tuple[float, ...]
    per_class_recall: tuple[float, ...]
    per_class_f1: tuple[float, ...]
    support: tuple[int, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]
    best_epoch: int = 0


@dataclass(frozen=True)
class RunFinished(Event):
    status: str  # finished | early_stopped | stopped | interrupted
    epochs_completed: int
    best_epoch: int
    best_val_acc: float  # of the best epoch
    elapsed: float
    last_checkpoint: str = ""
    best_val_loss: float | None = None  # of the best epoch
    monitor: str = "val_acc"  # what chose the best epoch (see EpochEnd)
    start_epoch: int = 0  # epochs done before this session (as RunStarted): `elapsed` is this session's


@dataclass(frozen=True)
class RunFailed(Event):
    error: str
    epoch: int = 0
    step: int = 0
    last_checkpoint: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        Preparing, RunStarted, EpochStarted, StepProgress, ValidationStarted, EpochEnd,
        EarlyStopUpdate, CheckpointSaved, LrChanged, Paused, Resumed, StopRequested, Notice,
        LrFound, SystemSample, EvaluationReport, RunFinished, RunFailed,
    )
}

TERMINAL_EVENTS = ("RunFinished", "RunFailed")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # 'nan', 'inf': JSON has no literal for them
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def to_dict(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {"event": event.event_name}
    raw = dataclasses.asdict(event)
    data.update({k: _jsonable(v) for k, v in raw.items()})
    return data


def to_json(event: Event) -> str:
    return json.dumps(to_dict(event), separators=(",", ":"), allow_nan=False)


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


def from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from its JSON form (unknown keys from newer versions are ignored).
    Raises ValueError when a field is missing, of the wrong type or out of range."""
    from .event_io import event_from_dict

    return event_from_dict(data)


def from_json(line: str | bytes) -> Event:
    return from_dict(json.loads(line))


def read_events(path) -> list[Event]:
    """The readable events of an events.jsonl file (see event_io.read_event_log)."""
    from .event_io import read_event_log

    return read_event_log(path)[0]


@runtime_checkable
class Sink(Protocol):
    def emit(self, event: Event) -> None: ...


class Fanout:
    """Sends each event to every sink, one event at a time (the engine and the system sampler
    emit from different threads); a failing view never stops training."""

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def emit(self, event: Event) -> None:
        with self._lock:
            for sink in self.sinks:
                try:
                    sink.emit(event)
                except Exception as exc:  # noqa: BLE001 - a view's bug must not kill the run
                    self.errors.append(f"{type(sink).__name__}: {exc!r}")

    def close(self) -> None:
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # noqa: BLE001
                    self.errors.append(f"{type(sink).__name__}.close: {exc!r}")


class ListSink:
    """Collects events in memory (tests, replay)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
