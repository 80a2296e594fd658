"""What happens at a step boundary when someone asked for something: pause, an LR change, a
checkpoint, a stop. The loop only calls `StepBoundary.service` when the Control says a request
is pending (one attribute read per step otherwise)."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import torch

from .. import events as ev
from .outcomes import StopTraining


class StepBoundary:
    def __init__(self, *, control, process, lr, checkpointing, parts, throughput, device: torch.device,
                 emit: Callable[[ev.Event], None]) -> None:
        self.control, self.process, self.lr = control, process, lr
        self.checkpointing, self.parts, self.throughput = checkpointing, parts, throughput
        self.device, self.emit = device, emit

    def service(self, state, epoch: int, step: int, flush: Callable[[], None] | None = None) -> None:
        """Act on the pending requests at step `step` of `epoch` (0: before its first step).
        flush: fold the metrics still on the device into state.sums (before a pause or a save)."""
        self.checkpointing.poll()  # a failed background write stops the run here
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
                self.process.exchange_requests(control)
                # Paused is idle at a step boundary: a save or an LR change asked for now happens
                # now (a stop ends the pause and is acted on below).
                self._act(dataclasses.replace(control.take(), stop=None), state, epoch, step, flush)
            paused_for = time.perf_counter() - t0
            self.throughput.add_pause(paused_for)
            self.emit(ev.Resumed(epoch=epoch, step=step, paused_for=paused_for))
        self._act(control.take(), state, epoch, step, flush)

    def _act(self, requests, state, epoch: int, step: int, flush) -> None:
        if requests.lr_factor != 1.0:
            old, new = self.lr.scale(state, requests.lr_factor)
            state.lr_changes.append({"epoch": epoch, "step": step, "factor": requests.lr_factor, "lr": new,
                                     "reason": "manual"})
            self.emit(ev.LrChanged(epoch=epoch, step=step, old_lr=old, new_lr=new, reason="manual"))
        progressed = state.epoch > 0 or state.step_in_epoch > 0  # nothing trained yet: nothing worth saving
        if (requests.checkpoint or requests.stop) and progressed:
            if flush is not None:
                flush()
            # Mid-epoch (even after its last step, before validation) the checkpoint records the
            # step and the epoch's running sums, so a resume continues from exactly here.
            kind = "manual" if requests.checkpoint and not requests.stop else "last"
            self.checkpointing.save_now(self.parts, state, kind)
        if requests.stop:
            self.emit(ev.StopRequested(reason=requests.stop))
            raise StopTraining(requests.stop)
