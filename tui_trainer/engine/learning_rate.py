"""The one owner of the optimizer's learning rate.

The LR of every parameter group is its schedule's value at the run's position times the manual
factor (the console's x2 / /2 keys), which lives in TrainState and is checkpointed. Only
`LearningRate.apply` writes `param_groups[i]["lr"]`, and `LearningRate.current` is the one
place that reads it. The schedule is one of:
- a built-in `Schedule` (lr_schedules.py): a pure function of the position, no state;
- `Plateau` (plateau.py): its state follows the validation loss;
- `TorchSchedule`: a user's own torch scheduler, passed to `Trainer.train(scheduler=...)`, which
  steps as torch's schedulers do (per epoch, per optimizer step for OneCycleLR, with the
  validation loss for ReduceLROnPlateau) and whose values the manual factor multiplies.
"""

from __future__ import annotations

import torch

from .lr_schedules import Schedule, constant, sample_plan
from .plateau import Plateau


class TorchSchedule:
    """A torch LR scheduler behind the schedule interface.

    A torch scheduler writes the optimizer's LR when it steps, and its recursive forms read the
    LR back as their previous value: so before each step the groups get the scheduler's own view
    (its values without the manual factor), and after it the view is read and the factor applied
    on top. Nothing private of the scheduler is touched."""

    def __init__(self, scheduler, optimizer: torch.optim.Optimizer) -> None:
        from torch.optim import lr_scheduler as sched

        self.scheduler = scheduler
        self.optimizer = optimizer
        self.per_step = isinstance(scheduler, sched.OneCycleLR)
        self.watches_val_loss = isinstance(scheduler, sched.ReduceLROnPlateau)
        self.view = [group["lr"] for group in optimizer.param_groups]
        # Checkpoints of earlier versions kept the manual factor inside the scheduler's state and
        # the optimizer's LR; such a view already holds it.
        self.factor_in_view = 1.0

    @property
    def name(self) -> str:
        from .schedulers import scheduler_name

        return scheduler_name(self.scheduler)

    def lrs(self, factor: float) -> list[float]:
        return [lr * factor / self.factor_in_view for lr in self.view]

    def step(self, *args) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.view):
            group["lr"] = lr
        self.scheduler.step(*args)
        self.view = [group["lr"] for group in self.optimizer.param_groups]

    def plan(self, factor: float, start_epoch: int, num_epochs: int, steps_per_epoch: int):
        from .schedulers import planned_lrs

        plan = planned_lrs(self.scheduler, self.optimizer, num_epochs, start_epoch, steps_per_epoch,
                           view=self.view)
        scale = factor / self.factor_in_view
        return tuple((pos, lr * scale) for pos, lr in plan)

    def state_dict(self) -> dict:
        state = self.scheduler.state_dict() if hasattr(self.scheduler, "state_dict") else {}
        return {"schedule": "torch", "torch": state, "view": list(self.view), "factor_in_view": self.factor_in_view}

    def load_state_dict(self, state: dict) -> None:
        kind = state.get("schedule")
        if kind not in ("torch", "version 1"):
            return  # a built-in schedule's state: nothing a torch scheduler can take
        if hasattr(self.scheduler, "load_state_dict"):
            self.scheduler.load_state_dict(state["torch"])
        if kind == "version 1":
            # The optimizer (loaded first) holds the scheduler's last LR, manual factor included.
            self.view = [group["lr"] for group in self.optimizer.param_groups]
            self.factor_in_view = float(state.get("manual_factor", 1.0))
        else:
            self.view = [float(v) for v in state["view"]]
            self.factor_in_view = float(state.get("factor_in_view", 1.0))


class LearningRate:
    def __init__(self, optimizer: torch.optim.Optimizer, schedule=None, base_lrs: list[float] | None = None) -> None:
        self.optimizer = optimizer
        if schedule is None:
            schedule = constant()
        elif not isinstance(schedule, (Schedule, Plateau, TorchSchedule)):
            schedule = TorchSchedule(schedule, optimizer)
        self.schedule = schedule
        # The LRs the optimizer was built with: a loaded checkpoint overwrites the groups' LRs,
        # never these.
        self.base_lrs = list(base_lrs) if base_lrs is not None else [g["lr"] for g in optimizer.param_groups]
        self.per_step = schedule.per_step
        # Under a captured step (graphed_step.py) each group's LR is a device tensor the graph
        # reads, written in place; the values last written are kept here so that reading the LR
        # never waits for the device.
        self._device_lrs: list[torch.Tensor] | None = None
        self._written = [group["lr"] for group in optimizer.param_groups]

    @property
    def name(self) -> str:
        return self.schedule.name

    @property
    def current(self) -> float:
        """The LR in use (the first group's)."""
        if self._device_lrs is not None:
            return self._written[0]
        return self.optimizer.param_groups[0]["lr"]

    def use_device_tensors(self, device: torch.device) -> None:
        """From now on each group's LR is one float32 tensor on `device`, written in place at step
        boundaries (a CUDA graph keeps reading the same memory). Only the built-in schedules
        write it: a torch scheduler of the user's own is never captured (capture.py)."""
        values = [float(v) for v in self._written]
        self._device_lrs = [torch.tensor(v, dtype=torch.float32, device=device) for v in values]
        for group, tensor in zip(self.optimizer.param_groups, self._device_lrs):
            group["lr"] = tensor

    def _values(self, state) -> list[float]:
        schedule, factor = self.schedule, state.lr_factor
        if isinstance(schedule, TorchSchedule):
            return schedule.lrs(factor)
        return [schedule.lr(base, state.epoch, state.global_step) * factor for base in self.base_lrs]

    def apply(self, state) -> None:
        values = self._values(state)
        if self._device_lrs is None:
            for group, lr in zip(self.optimizer.param_groups, values):
                group["lr"] = lr
        else:
            for tensor, lr in zip(self._device_lrs, values):
                tensor.fill_(lr)  # queued on the stream before the next replay; no host sync
        self._written = values

    def after_optimizer_step(self, state) -> None:
        """A per-step schedule moves on (call only when `per_step`)."""
        if isinstance(self.schedule, TorchSchedule):
            self.schedule.step()
        self.apply(state)

    def end_epoch(self, state, val_loss: float) -> tuple[float, float]:
        """The epoch is done (state.epoch counts it): the LR for the next one. Returns the LR
        before and after; they differ for a schedule that follows the validation loss when it
        cut the LR, which is reported as a change nobody planned."""
        before = self.current
        schedule = self.schedule
        if isinstance(schedule, Plateau):
            schedule.observe(val_loss, before)
        elif isinstance(schedule, TorchSchedule) and not schedule.per_step:
            schedule.step(val_loss) if schedule.watches_val_loss else schedule.step()
        self.apply(state)
        return before, self.current

    def scale(self, state, factor: float) -> tuple[float, float]:
        """Multiply the LR by `factor` from now on (the manual factor); returns (old, new)."""
        before = self.current
        state.lr_factor *= factor
        self.apply(state)
        return before, self.current

    def plan(self, state, num_epochs: int, steps_per_epoch: int) -> tuple[tuple[float, float], ...]:
        """The LR over the rest of the run, as (epoch position, lr) pairs, a few hundred at most:
        the same function the optimizer follows. Empty when it depends on the validation loss."""
        schedule, start = self.schedule, state.epoch
        if schedule.watches_val_loss:
            return ()
        if isinstance(schedule, TorchSchedule):
            return schedule.plan(state.lr_factor, start, num_epochs, steps_per_epoch)
        base, factor = self.base_lrs[0], state.lr_factor
        if schedule.name == "none":
            return ((float(start), base * factor), (float(num_epochs), base * factor))
        if schedule.per_step:
            return sample_plan(lambda i: schedule.lr(base, i // max(1, steps_per_epoch), i) * factor,
                               start, num_epochs, steps_per_epoch, True)
        return sample_plan(lambda i: schedule.lr(base, i, 0) * factor, start, num_epochs, steps_per_epoch, False)

    def state_dict(self) -> dict | None:
        return None if self.schedule.name == "none" and isinstance(self.schedule, Schedule) \
            else self.schedule.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.schedule.load_state_dict(state)
