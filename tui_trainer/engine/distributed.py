"""Training under torchrun: one process per device, DistributedDataParallel, one console.

`torchrun --nproc-per-node N -m tui_trainer run DATASET ...` starts N copies of the CLI; each
joins the process group (Gloo for CPU tensors, NCCL for CUDA tensors) from torchrun's
environment variables through `DistContext.from_env` (tui_trainer/torchrun.py says who runs
what). Rank 0 alone writes the run directory and shows the console; every rank trains.

What crosses between ranks, and when:
- Gradients: DDP, during backward (no_sync on accumulation micro-steps).
- Control requests: `exchange_requests`, at optimizer-step boundaries every rank reaches in the
  same order. Rank 0's keys and signals, and a stop asked for on any rank, become one small
  all-reduce; every rank applies the result to its trainer's own Control, so all of them
  pause, stop, checkpoint or change the LR at the same step. The exchange runs every k steps,
  k agreed at each exchange (about ten exchanges a second), and at every call while paused.
- Metrics: sums of losses, correct counts, sample counts and the confusion matrix, on the CPU.
- Failures: a rank that fails records its error in the rendezvous store before it exits. The
  others' next collective then fails (Gloo notices a closed connection at once; a rank that
  hangs is given up on after the process-group timeout) and rank 0 reports the recorded error
  rather than the lost connection. A watchdog thread on rank 0 shows a recorded failure even
  when the main thread is stuck inside the GPU runtime.

Every collective here runs on a separate Gloo group over CPU tensors, so control and metrics
never wait for GPU work and never interleave with DDP's NCCL traffic.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import socket
import threading
import time
from typing import Callable

import torch
import torch.distributed as tdist

from ..errors import UserError
from .control import Control

DEFAULT_TIMEOUT = 600.0  # seconds a collective may wait for another rank before the run fails
EXCHANGE_EVERY = 0.1  # target seconds between control exchanges while training
MAX_EXCHANGE_INTERVAL = 10_000  # optimizer steps
RATE_WINDOW = 1.0  # seconds of training over which each rank measures its own throughput
FAILURE_GRACE = 3.0  # seconds the main thread has to report a peer's failure before the watchdog does

STOP_REASONS = ("user", "signal", "term", "quit")
# Layout of the exchanged vector: rank 0's requests, then one stop flag per reason (any rank),
# then one throughput slot per rank.
_PAUSED, _CHECKPOINT, _LR, _STOP0, _INTERVAL = range(5)
_STOPS = 5
_RATES = _STOPS + len(STOP_REASONS)

_STORE_PREFIX = "tui-trainer/"
_FAILED_COUNT = "failed/count"

def _is_comm_error(exc: BaseException) -> bool:
    dist_error = getattr(tdist, "DistError", None)
    if dist_error is not None and isinstance(exc, dist_error):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        word in text for word in ("gloo", "nccl", "connection closed by peer", "connection reset by peer"))


def _first_line(text: str, limit: int = 200) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[0] if lines else "")[:limit]


class DistContext:
    """What the training loop needs from torch.distributed (see `Trainer(dist=...)`): the same
    methods as process.SingleProcess, acting over every rank.

    Build one with `DistContext.from_env()` inside a process torchrun started; pass it to
    `Trainer` or `runner.execute`, and call `close()` at the end.
    """

    def __init__(self, *, rank: int, world_size: int, local_rank: int, local_world_size: int,
                 group, store, timeout: float) -> None:
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.local_world_size = local_world_size
        self.is_main = rank == 0
        self.timeout = timeout
        self.uses_nccl = torch.cuda.is_available()  # see from_env: CUDA tensors go through NCCL
        self.host = socket.gethostname()
        self.rank_rates: tuple[float, ...] = ()  # samples/s of each rank, from the latest exchange
        self.peer_failed = False  # this rank's run ended because another rank failed
        self.on_peer_failure: Callable[[str], None] | None = None  # rank 0's watchdog reports here
        self._group = group
        self._store = store
        self._source: Control | None = None
        self._countdown = 1
        self._interval = 1
        self._last_exchange = time.perf_counter()
        self._last_call: tuple[float, int | None] | None = None
        self._busy = 0.0  # training seconds and samples since this rank's throughput was last measured
        self._done = 0
        self._my_rate = 0.0
        self._failure_described = False
        self.announced = False  # rank 0 told the followers what to run, or to stop (torchrun.py)
        self._closing = threading.Event()
        self._watchdog: threading.Thread | None = None

    # ------------------------------------------------------------------ set-up and tear-down
    @classmethod
    def from_env(cls, timeout: float = DEFAULT_TIMEOUT) -> "DistContext":
        """Join the process group torchrun describes in RANK, WORLD_SIZE, MASTER_ADDR, ..."""
        rank = int(os.environ["RANK"])
        world = int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        wait = datetime.timedelta(seconds=timeout)
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
            backend = "cpu:gloo,cuda:nccl"
        else:
            backend = "gloo"
        if not tdist.is_initialized():
            tdist.init_process_group(backend=backend, timeout=wait)
        group = tdist.new_group(backend="gloo", timeout=wait)
        store = tdist.PrefixStore(_STORE_PREFIX, tdist.distributed_c10d._get_default_store())
        context = cls(rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world,
                      group=group, store=store, timeout=timeout)
        if context.is_main:
            context._watchdog = threading.Thread(target=context._watch, name="tui-trainer-ranks", daemon=True)
            context._watchdog.start()
        return context

    def close(self) -> None:
        self._closing.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=2)
        if not tdist.is_initialized():
            return
        if self._failure_described and self.uses_nccl:
            return  # after a failure a peer may be gone: tearing down NCCL could wait for it
        # Gloo closes its connections at once, so after a failure here the other ranks' pending
        # collectives fail now rather than when this process has finished exiting.
        with contextlib.suppress(Exception):
            tdist.destroy_process_group()
        gc.collect()  # the connections close when the last reference (a DDP model in a cycle) goes

    # ------------------------------------------------------------------ the model
    def wrap_model(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        device = torch.device(device)
        if device.type == "cuda":
            gpus = torch.cuda.device_count()
            if self.local_world_size > gpus:
                raise UserError(f"{self.local_world_size} processes on this node but {gpus} GPU(s): start "
                                f"torchrun with --nproc-per-node {gpus} (one process per GPU), or train with "
                                "--device cpu")
            torch.cuda.set_device(device)
            return DistributedDataParallel(model, device_ids=[device.index], output_device=device.index)
        if device.type != "cpu":
            raise UserError(f"training on several processes supports --device cuda or cpu, not {device.type}")
        return DistributedDataParallel(model)

    def no_sync(self, model: torch.nn.Module):
        """Skip the gradient all-reduce on accumulation micro-steps before the last one."""
        ddp = getattr(model, "_orig_mod", model)
        return ddp.no_sync() if hasattr(ddp, "no_sync") else contextlib.nullcontext()

    def eval_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The bare module, with rank 0's buffers (BatchNorm statistics), for evaluation.

        Evaluating through DDP would run a buffer broadcast on a rank's first batch only, and a
        validation shard may be empty on some rank: going around DDP keeps the ranks in step.
        """
        bare = getattr(getattr(model, "_orig_mod", model), "module", model)
        for buffer in bare.buffers():
            if buffer.device.type == "cpu":
                tdist.broadcast(buffer, src=0, group=self._group)
            else:
                tdist.broadcast(buffer, src=0)
        return bare

    def interruptible(self, batches, control):
        """Validation batches as they are: the ranks stop together, at optimizer-step boundaries only."""
        return batches

    # ------------------------------------------------------------------ collectives on the CPU group
    def barrier(self) -> None:
        tdist.barrier(group=self._group)

    def all_reduce_sum(self, values, device=None) -> list[float]:
        """Sum numbers over ranks (float64: counts stay exact up to 2**53)."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        tdist.all_reduce(t, group=self._group)
        return t.tolist()

    def all_reduce_tensor(self, tensor: torch.Tensor, device=None) -> torch.Tensor:
        t = tensor.detach().to("cpu", copy=True)
        tdist.all_reduce(t, group=self._group)
        return t.to(tensor.device)

    def broadcast_object(self, obj=None):
        """Rank 0's `obj` on every rank."""
        box = [obj]
        tdist.broadcast_object_list(box, src=0, group=self._group)
        return box[0]

    def gather_objects(self, obj) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        out = [None] * self.world_size
        tdist.all_gather_object(out, obj, group=self._group)
        return out

    def gather_rng(self) -> list | None:
        """Each rank's random-number state, on rank 0 (None elsewhere); for checkpoints."""
        from . import checkpoint as ckpt

        out = [None] * self.world_size if self.is_main else None
        tdist.gather_object(ckpt.capture_rng(), out, dst=0, group=self._group)
        return out

    def reduce_sums(self, sums: dict) -> dict:
        """An epoch's running sums over every rank (a mid-epoch checkpoint stores these)."""
        keys = ("loss", "correct", "count", "skipped")
        totals = self.all_reduce_sum([sums[k] for k in keys])
        return {k: (v if k == "loss" else int(round(v))) for k, v in zip(keys, totals)}

    # ------------------------------------------------------------------ control
    def attach(self, control: Control | None) -> Control:
        """Returns the Control the trainer should act on; `control` (rank 0's keys and signals, or
        this rank's signals) only feeds the exchanges, so every rank acts on the same requests."""
        self._source = control if control is not None else Control()
        return Control()

    def exchange_requests(self, control: Control, samples: int | None = None) -> None:
        """Called by every rank at the same step boundaries (and repeatedly while paused).

        `samples`: this rank's samples so far this epoch, for its throughput.
        """
        now = time.perf_counter()
        self._measure_rate(now, samples)
        if not control.paused:
            self._countdown -= 1
            if self._countdown > 0:
                return
        vec = torch.zeros(_RATES + self.world_size, dtype=torch.float64)
        source = self._source
        if self.is_main:
            vec[_LR] = 1.0
            if source is not None:
                paused = source.paused
                requests = source.take()
                vec[_PAUSED] = 1.0 if paused and requests.stop is None else 0.0
                vec[_CHECKPOINT] = 1.0 if requests.checkpoint else 0.0
                vec[_LR] = requests.lr_factor
                if requests.stop is not None:
                    vec[_STOP0] = 1 + STOP_REASONS.index(requests.stop) if requests.stop in STOP_REASONS else 1
            vec[_INTERVAL] = self._next_interval(now, paused=bool(vec[_PAUSED]))
        elif source is not None and source.stop_reason is not None:
            reason = source.stop_reason if source.stop_reason in STOP_REASONS else "term"
            vec[_STOPS + STOP_REASONS.index(reason)] = 1.0
        vec[_RATES + self.rank] = self._my_rate
        tdist.all_reduce(vec, group=self._group)
        self._apply(vec.tolist(), control)
        self._last_exchange = time.perf_counter()

    def _next_interval(self, now: float, paused: bool) -> int:
        if paused:
            return 1
        per_call = (now - self._last_exchange) / max(1, self._interval)
        if per_call <= 0:
            return MAX_EXCHANGE_INTERVAL
        return int(min(MAX_EXCHANGE_INTERVAL, max(1, EXCHANGE_EVERY / per_call)))

    def _measure_rate(self, now: float, samples: int | None) -> None:
        """Add the time and samples since the previous step; a gap that holds a pause (no
        `samples`) or an epoch's end (the count starts again, after validation) is left out."""
        previous, self._last_call = self._last_call, (now, samples)
        if samples is None or previous is None or previous[1] is None or samples < previous[1]:
            return
        self._busy += now - previous[0]
        self._done += samples - previous[1]
        if self._busy >= RATE_WINDOW:
            self._my_rate = self._done / self._busy
            self._busy, self._done = 0.0, 0

    def _apply(self, v: list[float], control: Control) -> None:
        self._interval = max(1, int(v[_INTERVAL]))
        self._countdown = self._interval
        self.rank_rates = tuple(v[_RATES:_RATES + self.world_size])
        if v[_PAUSED] > 0 and not control.paused:
            control.pause()
        elif v[_PAUSED] == 0 and control.paused:
            control.resume()
        if v[_CHECKPOINT] > 0:
            control.request_checkpoint()
        if v[_LR] > 0 and v[_LR] != 1.0:
            control.scale_lr(v[_LR])
        reason = None
        if v[_STOP0] > 0:
            reason = STOP_REASONS[int(v[_STOP0]) - 1]
        else:
            reason = next((r for i, r in enumerate(STOP_REASONS) if v[_STOPS + i] > 0), None)
        if reason is not None and control.stop_reason is None:
            control.request_stop(reason)

    # ------------------------------------------------------------------ failures
    def describe_failure(self, exc: BaseException, message: str) -> str:
        """The message to report for this rank's failure.

        When it was caused by another rank's failure (our collective lost its peer), that
        rank's recorded error; otherwise `message`, recorded for the other ranks to show.
        """
        self._failure_described = True
        if _is_comm_error(exc):
            peer = self._peer_failure(wait=2.0)
            if peer is not None:
                self.peer_failed = True
                return peer
            message = (f"lost contact with another process ({_first_line(message)}); no rank recorded an "
                       f"error: one may have been killed, or hung for {self.timeout:.0f} s (--dist-timeout)")
        self._record_failure(message)
        return message

    def _record_failure(self, message: str) -> None:
        try:
            self._store.set(f"failed/{self.rank}", f"{self.host}\n{message}")
            self._store.add(_FAILED_COUNT, 1)
        except Exception:  # noqa: BLE001 - the store may be gone with rank 0; nothing more to tell
            pass

    def _peer_failure(self, wait: float = 0.0) -> str | None:
        deadline = time.monotonic() + wait
        while True:
            try:
                if self._store.add(_FAILED_COUNT, 0) > 0:
                    for r in range(self.world_size):
                        key = f"failed/{r}"
                        if r != self.rank and self._store.check([key]):
                            host, _, text = self._store.get(key).decode(errors="replace").partition("\n")
                            where = f"rank {r}" + (f" ({host})" if self.local_world_size != self.world_size else "")
                            return f"{where} failed: {text}"
            except Exception:  # noqa: BLE001 - no store, no record
                return None
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def _watch(self) -> None:
        """Rank 0: show a recorded failure even if the main thread is stuck in a collective."""
        seen = None
        while not self._closing.wait(1.0):
            try:
                failed = self._store.add(_FAILED_COUNT, 0) > 0
            except Exception:  # noqa: BLE001
                failed = False
            if not failed or self._failure_described:
                continue
            seen = seen or time.monotonic()
            if time.monotonic() - seen < FAILURE_GRACE:
                continue
            text = self._peer_failure()
            if text and self.on_peer_failure is not None:
                self.on_peer_failure(f"{text}; waiting for the other processes to stop")
            return
