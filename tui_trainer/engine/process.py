"""The process the loop runs in, behind one interface: alone (`SingleProcess`) or as one of
torchrun's ranks (`distributed.DistContext`). The loop calls the same methods either way and
never asks which it has: alone, a reduction returns its input, `no_sync` is a null context and
the process is the main one. Whoever starts the run creates the context and passes it in
(`Trainer(dist=...)`, `runner.execute(dist=...)`); there is no module-global one.
"""

from __future__ import annotations

import contextlib

from ..errors import UserError
from .outcomes import StopValidation


class SingleProcess:
    rank = 0
    world_size = 1
    local_rank = 0
    local_world_size = 1
    is_main = True
    rank_rates: tuple[float, ...] = ()
    peer_failed = False
    on_peer_failure = None  # alone, no other process can fail

    def attach(self, control):
        return control

    def wrap_model(self, model, device):
        return model

    def no_sync(self, model):
        return contextlib.nullcontext()

    def eval_model(self, model):
        return model

    def interruptible(self, batches, control):
        """Validation batches that end at a stop request (a quit must not wait for a long pass)."""
        for batch in batches:
            if control.pending and control.stop_reason is not None:
                raise StopValidation
            yield batch

    def barrier(self) -> None:
        pass

    def all_reduce_sum(self, values, device=None) -> list:
        return list(values)

    def all_reduce_tensor(self, tensor, device=None):
        return tensor

    def broadcast_object(self, obj=None):
        return obj

    def gather_objects(self, obj) -> list:
        return [obj]

    def gather_rng(self) -> list | None:
        return None  # one process: the checkpoint's own random state is this one's

    def reduce_sums(self, sums: dict) -> dict:
        return sums

    def exchange_requests(self, control, samples: int | None = None) -> None:
        pass

    def describe_failure(self, exc: BaseException, message: str) -> str:
        return message

    def close(self) -> None:
        pass


def fixed_in_steps(saved: dict) -> bool:
    """Is the checkpoint's LR schedule fixed in optimizer steps (onecycle)?"""
    schedule = saved.get("scheduler_state_dict") or {}
    return isinstance(schedule, dict) and ("total_steps" in schedule or "total_steps" in (schedule.get("torch") or {}))


def resume_for_process_count(saved: dict, process, emit) -> dict:
    """Fit a checkpoint to this run's process count (call before `Trainer.load_state_dict`).

    Same count: each rank continues with its own random-number state, exactly. A different
    count: the data are sharded differently, so a checkpoint saved mid-epoch restarts that
    epoch from its first batch (with a warning); an epoch-boundary checkpoint continues as is.
    """
    process = process if process is not None else SingleProcess()
    rank, world = process.rank, process.world_size
    saved_world = int(saved.get("world_size") or 1)
    saved = dict(saved)
    rank_rng = saved.get("rank_rng") or []
    if rank < len(rank_rng) and rank_rng[rank] is not None and saved_world == world:
        saved["rng"] = rank_rng[rank]
    elif rank > 0:
        saved["rng"] = _fresh_rng(int((saved.get("config") or {}).get("seed") or 0) + rank
                                  + 1000 * int(saved.get("epoch", 0)))
    if saved_world == world:
        return saved
    batch = int((saved.get("config") or {}).get("batch_size") or 0)
    emit_notice = emit if emit is not None else (lambda e: None)
    from .. import events as ev

    if fixed_in_steps(saved):
        raise UserError(f"this run was saved by {saved_world} process(es) and its onecycle schedule is fixed in "
                        f"optimizer steps; resume it with {saved_world} process(es)")
    emit_notice(ev.Notice(level="warning", message=(
        f"resuming with {world} process(es) a run saved by {saved_world}: each epoch is split "
        f"{world} ways, so the global batch is now {world} x {batch} and the result is not identical "
        f"to an uninterrupted run")))
    step = int(saved.get("step_in_epoch") or 0)
    if step:
        emit_notice(ev.Notice(level="warning", message=(
            f"the checkpoint was saved at step {step} of epoch {int(saved['epoch']) + 1}; with a different "
            "number of processes that epoch restarts from its first batch")))
        saved["step_in_epoch"] = 0
        saved["epoch_sums"] = None
        if saved.get("loader"):
            saved["loader"] = dict(saved["loader"], skip=0)
    return saved


def _fresh_rng(seed: int) -> dict:
    import random

    import numpy as np
    import torch

    from . import checkpoint as ckpt

    saved = ckpt.capture_rng()
    try:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        return ckpt.capture_rng()
    finally:
        ckpt.restore_rng(saved)
