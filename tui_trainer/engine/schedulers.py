"""LR schedulers: the seed's `create_scheduler`, plus onecycle and none, and a look ahead.

`planned_lrs` simulates a scheduler on a throwaway optimizer so the console can draw the
whole schedule before training reaches it. It never touches the real optimizer.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch.optim import lr_scheduler as sched

from ..errors import UserError

SCHEDULER_NAMES = ("step", "multistep", "cosine", "plateau", "warmup_cosine", "onecycle", "none")


def create_scheduler(optimizer: torch.optim.Optimizer, scheduler_type: str = "cosine", **kwargs: Any):
    """Create a scheduler by name, with the seed's defaults. Returns None for 'none'.

    onecycle steps per optimizer step and needs `total_steps` (or `epochs` and
    `steps_per_epoch`); every other scheduler steps once per epoch.
    """
    if scheduler_type == "step":
        return sched.StepLR(optimizer, step_size=kwargs.get("step_size", 30), gamma=kwargs.get("gamma", 0.1))
    if scheduler_type == "multistep":
        return sched.MultiStepLR(optimizer, milestones=kwargs.get("milestones", [30, 60, 90]),
                                 gamma=kwargs.get("gamma", 0.1))
    if scheduler_type == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=kwargs.get("T_max", 100), eta_min=kwargs.get("eta_min", 0.0))
    if scheduler_type == "plateau":
        return sched.ReduceLROnPlateau(optimizer, mode="min", factor=kwargs.get("factor", 0.5),
                                       patience=kwargs.get("patience", 10))
    if scheduler_type == "warmup_cosine":
        # The seed's name for CosineAnnealingWarmRestarts (cosine cycles restarting every T_0 epochs).
        return sched.CosineAnnealingWarmRestarts(optimizer, T_0=kwargs.get("T_0", 10),
                                                 T_mult=kwargs.get("T_mult", 1))
    if scheduler_type == "onecycle":
        total = kwargs.get("total_steps")
        if total is None:
            if "epochs" not in kwargs or "steps_per_epoch" not in kwargs:
                raise ValueError("onecycle needs total_steps, or epochs and steps_per_epoch")
            total = kwargs["epochs"] * kwargs["steps_per_epoch"]
        max_lr = kwargs.get("max_lr", [g["lr"] for g in optimizer.param_groups])
        return sched.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total,
                                pct_start=kwargs.get("pct_start", 0.3))
    if scheduler_type == "none":
        return None
    raise UserError(f"unknown scheduler '{scheduler_type}'; choose one of: {', '.join(SCHEDULER_NAMES)}")


def scheduler_for_run(optimizer, name: str, epochs: int, optimizer_steps_per_epoch: int,
                      plateau_patience: int = 5):
    """The CLI's scheduler: the seed's kinds, with lengths scaled to the run's epochs."""
    if name == "cosine":
        return create_scheduler(optimizer, "cosine", T_max=epochs)
    if name == "step":
        return create_scheduler(optimizer, "step", step_size=max(1, round(epochs * 0.3)))
    if name == "multistep":
        marks = sorted({max(1, round(epochs * f)) for f in (0.3, 0.6, 0.9)})
        return create_scheduler(optimizer, "multistep", milestones=marks)
    if name == "plateau":
        return create_scheduler(optimizer, "plateau", patience=plateau_patience)
    if name == "warmup_cosine":
        return create_scheduler(optimizer, "warmup_cosine", T_0=min(10, epochs))
    if name == "onecycle":
        return create_scheduler(optimizer, "onecycle", total_steps=max(1, epochs * optimizer_steps_per_epoch))
    return create_scheduler(optimizer, name)


def steps_per_batch(scheduler) -> bool:
    """True for schedulers that step after every optimizer step rather than every epoch."""
    return isinstance(scheduler, sched.OneCycleLR)


SHORT_NAMES = {"StepLR": "step", "MultiStepLR": "multistep", "CosineAnnealingLR": "cosine",
               "ReduceLROnPlateau": "plateau", "CosineAnnealingWarmRestarts": "warmup_cosine",
               "OneCycleLR": "onecycle"}


def scheduler_name(scheduler) -> str:
    """The name create_scheduler knows it by, else the class name."""
    if scheduler is None:
        return "none"
    name = type(scheduler).__name__
    return SHORT_NAMES.get(name, name)


EXACT_PLAN_STEPS = 5000  # epoch schedules up to this many epochs are simulated step by step


def _lr_at(shadow, step: int) -> float:
    """The first group's LR after `step` scheduler steps, computed directly (closed form), not by
    stepping there: O(1) however long the run."""
    if isinstance(shadow, sched.CosineAnnealingWarmRestarts):
        shadow.step(step)  # with an explicit epoch this scheduler computes its position directly
        return shadow.optimizer.param_groups[0]["lr"]
    shadow.last_epoch = step
    if isinstance(shadow, sched.OneCycleLR):
        return shadow.get_lr()[0]  # a function of the step number alone
    closed_form = getattr(shadow, "_get_closed_form_lr", None)
    if closed_form is None:
        raise LookupError(type(shadow).__name__)
    return closed_form()[0]


def planned_lrs(scheduler, optimizer, num_epochs: int, start_epoch: int = 0,
                optimizer_steps_per_epoch: int = 1, max_points: int = 400) -> tuple[tuple[float, float], ...]:
    """The LR of the first param group over the rest of the run, as (epoch position, lr) pairs:
    at most about max_points of them, however long the run (the panel draws a few hundred).

    Worked out on a copy of the scheduler driving a one-parameter optimizer, never the real one:
    an epoch schedule of up to EXACT_PLAN_STEPS epochs is stepped through (exactly what training
    will do, manual LR changes and stretched lengths included); longer ones, and per-step
    schedules (onecycle), are sampled at evenly spaced steps in closed form. Empty for schedules
    that depend on metrics (plateau) or cannot be previewed.
    """
    if scheduler is None:
        lr = optimizer.param_groups[0]["lr"]
        return ((float(start_epoch), lr), (float(num_epochs), lr))
    if isinstance(scheduler, sched.ReduceLROnPlateau):
        return ()
    try:
        dummy = torch.nn.Parameter(torch.zeros(1))
        groups = []
        for g in optimizer.param_groups:
            extra = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            groups.append({"params": [dummy] if not groups else [torch.nn.Parameter(torch.zeros(1))], **extra})
        shadow_opt = torch.optim.SGD(groups, lr=groups[0]["lr"])
        shadow = copy.copy(scheduler)
        shadow.__dict__ = {k: copy.deepcopy(v) for k, v in scheduler.__dict__.items() if k != "optimizer"}
        shadow.optimizer = shadow_opt
        per_step = steps_per_batch(scheduler)
        n_steps = max(0, num_epochs - start_epoch) * (optimizer_steps_per_epoch if per_step else 1)
        # OneCycleLR refuses a step past total_steps: its last point is one step short of the end.
        last = n_steps - 1 if per_step else n_steps
        unit = 1.0 / optimizer_steps_per_epoch if per_step else 1.0
        points = [(float(start_epoch), shadow_opt.param_groups[0]["lr"])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not per_step and n_steps <= EXACT_PLAN_STEPS:
                stride = max(1, n_steps // max_points)
                for i in range(1, n_steps + 1):
                    shadow.step()
                    if i % stride == 0:
                        points.append((start_epoch + i * unit, shadow_opt.param_groups[0]["lr"]))
            else:
                base = shadow.last_epoch
                count = min(max_points, max(1, last))
                for j in range(1, count + 1):
                    i = round(j * last / count)
                    points.append((start_epoch + i * unit, _lr_at(shadow, base + i)))
        return tuple(points)
    except Exception:  # noqa: BLE001 - a schedule we cannot preview is simply not drawn ahead
        return ()
