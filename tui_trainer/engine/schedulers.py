"""LR schedulers by name: the seed's `create_scheduler` (torch's schedulers, for a user's own
script), the command line's `scheduler_for_run` (built-in schedules, pure functions of the
position: lr_schedules.py), and `planned_lrs`, the look-ahead the console draws.

`planned_lrs` never steps, copies or touches the real scheduler: torch's schedulers that have a
closed form (every one `create_scheduler` makes) are evaluated with the same formulas as the
built-in schedules, at a few hundred positions; any other is simulated on a deep copy driving
a throwaway optimizer, when the rest of the run is short enough to step through.
"""

from __future__ import annotations

import copy
import warnings
from types import SimpleNamespace
from typing import Any

import torch
from torch.optim import lr_scheduler as sched

from ..errors import UserError
from . import lr_schedules as lrs
from .lr_schedules import BUILT_IN as SCHEDULER_NAMES  # noqa: F401  (the names the CLI accepts)

EXACT_PLAN_STEPS = 5000  # a scheduler without a closed form is stepped through for at most this many steps


def create_scheduler(optimizer: torch.optim.Optimizer, scheduler_type: str = "cosine", **kwargs: Any):
    """Create a torch scheduler by name, with the seed's defaults. Returns None for 'none'.

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
    raise UserError(f"unknown scheduler '{scheduler_type}'; choose one of: {', '.join(lrs.BUILT_IN)}")


def scheduler_for_run(optimizer, name: str, epochs: int, optimizer_steps_per_epoch: int, plateau_patience: int = 5):
    """The command line's schedule for `name`, its lengths scaled to the run's epochs (see
    lr_schedules.schedule_for_run; `optimizer` is not needed and kept for the seed's order)."""
    return lrs.schedule_for_run(name, epochs, optimizer_steps_per_epoch, plateau_patience)


def steps_per_batch(scheduler) -> bool:
    """True for schedules that move after every optimizer step rather than every epoch."""
    return bool(getattr(scheduler, "per_step", False)) or isinstance(scheduler, sched.OneCycleLR)


SHORT_NAMES = {"StepLR": "step", "MultiStepLR": "multistep", "CosineAnnealingLR": "cosine",
               "ReduceLROnPlateau": "plateau", "CosineAnnealingWarmRestarts": "warmup_cosine",
               "OneCycleLR": "onecycle"}


def scheduler_name(scheduler) -> str:
    """The name create_scheduler knows it by, else the class name."""
    if scheduler is None:
        return "none"
    name = getattr(scheduler, "name", None)
    if isinstance(name, str):
        return name
    name = type(scheduler).__name__
    return SHORT_NAMES.get(name, name)


def _closed_form(scheduler, view: list[float]):
    """The first group's LR after i of the scheduler's steps, as a function of i, for torch's
    schedulers that have one (None otherwise). Uses the scheduler's public settings only."""
    base = scheduler.base_lrs[0] if getattr(scheduler, "base_lrs", None) else view[0]
    if type(scheduler) is sched.CosineAnnealingLR:
        return lambda i: lrs.cosine(base, i, scheduler.T_max, scheduler.eta_min)
    if type(scheduler) is sched.StepLR:
        return lambda i: lrs.step_decay(base, i, scheduler.step_size, scheduler.gamma)
    if type(scheduler) is sched.MultiStepLR:
        marks = tuple(sorted(scheduler.milestones.elements()))
        return lambda i: lrs.multistep(base, i, marks, scheduler.gamma)
    if type(scheduler) is sched.CosineAnnealingWarmRestarts:
        return lambda i: lrs.warm_restarts(base, i, scheduler.T_0, scheduler.T_mult, scheduler.eta_min)
    if type(scheduler) is sched.OneCycleLR:
        state = scheduler.state_dict()
        group = scheduler.optimizer.param_groups[0]
        phases = [(p["end_step"], group[p["start_lr"]], group[p["end_lr"]]) for p in state["_schedule_phases"]]
        anneal = state.get("_anneal_func_type", "cos")
        return lambda i: lrs.phased(i, phases, anneal)
    return None


def _simulated(scheduler, optimizer, view: list[float], n_steps: int, metric_free: bool = True):
    """The first group's LR after each of n_steps steps of a deep copy of `scheduler` driving a
    throwaway optimizer (the real optimizer is swapped out in the copy, never copied)."""
    dummy = [torch.nn.Parameter(torch.zeros(1)) for _ in optimizer.param_groups]
    groups = [{**{k: copy.deepcopy(v) for k, v in g.items() if k != "params"}, "params": [p], "lr": lr}
              for g, p, lr in zip(optimizer.param_groups, dummy, view)]
    shadow_opt = torch.optim.SGD(groups, lr=groups[0]["lr"])
    shadow = copy.deepcopy(scheduler, memo={id(optimizer): shadow_opt})
    out = [shadow_opt.param_groups[0]["lr"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_steps):
            shadow.step()
            out.append(shadow_opt.param_groups[0]["lr"])
    return out


def planned_lrs(scheduler, optimizer, num_epochs: int, start_epoch: int = 0, optimizer_steps_per_epoch: int = 1,
                max_points: int = 400, view: list[float] | None = None) -> tuple[tuple[float, float], ...]:
    """The LR of the first param group over the rest of the run, as (epoch position, lr) pairs:
    at most about max_points of them, however long the run (the panel draws a few hundred).

    `scheduler`: a built-in schedule (from scheduler_for_run), a torch scheduler, or None. Empty
    for schedules that follow the validation loss (plateau) or that cannot be previewed.
    view: the LRs the scheduler itself last gave (default: the optimizer's)."""
    view = list(view) if view is not None else [g["lr"] for g in optimizer.param_groups]
    if scheduler is None:
        return ((float(start_epoch), view[0]), (float(num_epochs), view[0]))
    if isinstance(scheduler, (lrs.Schedule,)) or getattr(scheduler, "watches_val_loss", None) is not None:
        from .learning_rate import LearningRate

        state = SimpleNamespace(epoch=start_epoch, global_step=start_epoch * optimizer_steps_per_epoch, lr_factor=1.0)
        return LearningRate(optimizer, scheduler).plan(state, num_epochs, optimizer_steps_per_epoch)
    if isinstance(scheduler, sched.ReduceLROnPlateau):
        return ()
    per_step = steps_per_batch(scheduler)
    done = scheduler.last_epoch
    first = start_epoch * optimizer_steps_per_epoch if per_step else start_epoch
    try:
        function = _closed_form(scheduler, view)
        if function is None:
            remaining = max(0, num_epochs - start_epoch) * (optimizer_steps_per_epoch if per_step else 1)
            if remaining > EXACT_PLAN_STEPS:
                return ()
            values = _simulated(scheduler, optimizer, view, remaining - 1 if per_step else remaining)
            function = lambda i: values[i - done]  # noqa: E731
        return lrs.sample_plan(lambda k: function(done + k - first), start_epoch, num_epochs,
                               optimizer_steps_per_epoch, per_step, max_points)
    except Exception:  # noqa: BLE001 - a schedule we cannot preview is simply not drawn ahead
        return ()
