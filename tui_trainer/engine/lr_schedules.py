"""Learning-rate schedules as pure functions of the run's position (nanoGPT's `get_lr(it)`,
airbench's `triangle()`): the LR the optimizer gets at a step and the LR plan the console draws
ahead are the same function, evaluated in O(1) however long the run.

The formulas are torch's closed forms (CosineAnnealingLR, StepLR, MultiStepLR,
CosineAnnealingWarmRestarts, OneCycleLR), so a schedule here and torch's scheduler of the same
name agree to the last few bits; torch's own schedulers step recursively, these never do.
`schedule_for_run` builds the command line's schedules from the run's length: a resume with
`--epochs N` builds them again for N epochs, which is how an epoch-based schedule stretches.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Callable

from ..errors import UserError

BUILT_IN = ("step", "multistep", "cosine", "plateau", "warmup_cosine", "onecycle", "none")


# ----------------------------------------------------------------------------- the formulas
def cosine(base: float, epoch: int, t_max: int, eta_min: float = 0.0) -> float:
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * epoch / t_max)) / 2


def step_decay(base: float, epoch: int, step_size: int, gamma: float = 0.1) -> float:
    return base * gamma ** (epoch // step_size)


def multistep(base: float, epoch: int, milestones: tuple[int, ...], gamma: float = 0.1) -> float:
    return base * gamma ** bisect.bisect_right(milestones, epoch)


def warm_restarts(base: float, epoch: int, t_0: int, t_mult: int = 1, eta_min: float = 0.0) -> float:
    """Cosine cycles restarting every t_0 epochs (each t_mult times longer than the last)."""
    if t_mult == 1:
        t_cur, t_i = epoch % t_0, t_0
    else:
        n = int(math.log(epoch / t_0 * (t_mult - 1) + 1, t_mult)) if epoch >= t_0 else 0
        t_cur = epoch - t_0 * (t_mult ** n - 1) / (t_mult - 1)
        t_i = t_0 * t_mult ** n
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


def one_cycle(max_lr: float, step: int, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
              final_div_factor: float = 1e4) -> float:
    """Warm up from max_lr/div_factor to max_lr over pct_start of the steps, then anneal (cosine)
    to max_lr/div_factor/final_div_factor, as torch's OneCycleLR does."""
    initial = max_lr / div_factor
    return phased(step, ((float(pct_start * total_steps) - 1, initial, max_lr),
                         (float(total_steps - 1), max_lr, initial / final_div_factor)))


def phased(step: int, phases, anneal: str = "cos") -> float:
    """The LR at `step` of a schedule made of phases (end step, start LR, end LR), each annealed
    from its start LR to its end LR (cosine or linear), as OneCycleLR computes it."""
    start_step = 0.0
    for i, (end_step, start_lr, end_lr) in enumerate(phases):
        if step <= end_step or i == len(phases) - 1:
            span = end_step - start_step
            pct = (step - start_step) / span if span else 0.0
            if anneal == "linear":
                return (end_lr - start_lr) * pct + start_lr
            return end_lr + (start_lr - end_lr) / 2.0 * (math.cos(math.pi * pct) + 1)
        start_step = end_step
    raise ValueError("a phased schedule needs at least one phase")


# ----------------------------------------------------------------------------- schedules
@dataclass(frozen=True)
class Schedule:
    """A built-in schedule: `lr(base, epoch, step)` is the LR for a group whose base LR is `base`,
    during epoch `epoch + 1` (epoch = completed epochs) at optimizer step `step` of the run.
    per_step: the LR moves with every optimizer step, not once per epoch. Holds no state."""

    name: str
    function: Callable[[float, int, int], float] = field(compare=False)
    per_step: bool = False
    watches_val_loss: bool = False
    description: dict = field(default_factory=dict, compare=False)

    def lr(self, base: float, epoch: int, step: int) -> float:
        return self.function(base, epoch, step)

    def state_dict(self) -> dict:
        return {"schedule": self.name, **self.description}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore: the LR follows from the run's position."""


def constant() -> Schedule:
    return Schedule("none", lambda base, epoch, step: base)


def schedule_for_run(name: str, epochs: int, optimizer_steps_per_epoch: int, plateau_patience: int = 5):
    """The command line's schedules, their lengths taken from the run's: the seed's kinds (cosine
    over the run, step at 30%, milestones at 30/60/90%, warm restarts every 10 epochs at most,
    onecycle over every optimizer step) and `plateau`, which follows the validation loss."""
    epochs = max(1, int(epochs))
    if name == "cosine":
        return Schedule(name, lambda base, e, s: cosine(base, e, epochs), description={"epochs": epochs})
    if name == "step":
        size = max(1, round(epochs * 0.3))
        return Schedule(name, lambda base, e, s: step_decay(base, e, size), description={"step_size": size})
    if name == "multistep":
        marks = tuple(sorted({max(1, round(epochs * f)) for f in (0.3, 0.6, 0.9)}))
        return Schedule(name, lambda base, e, s: multistep(base, e, marks), description={"milestones": list(marks)})
    if name == "warmup_cosine":
        t_0 = min(10, epochs)
        return Schedule(name, lambda base, e, s: warm_restarts(base, e, t_0), description={"T_0": t_0})
    if name == "onecycle":
        total = max(1, epochs * optimizer_steps_per_epoch)
        return Schedule(name, lambda base, e, s: one_cycle(base, s, total), per_step=True,
                        description={"total_steps": total})
    if name == "plateau":
        from .plateau import Plateau

        return Plateau(patience=plateau_patience)
    if name == "none":
        return constant()
    raise UserError(f"unknown scheduler '{name}'; choose one of: {', '.join(BUILT_IN)}")


def sample_plan(lr_at: Callable[[int], float], start_epoch: int, num_epochs: int, steps_per_epoch: int,
                per_step: bool, max_points: int = 400) -> tuple[tuple[float, float], ...]:
    """(epoch position, lr) pairs over the rest of the run, at most about max_points of them:
    every epoch (or optimizer step) when there are few, evenly spaced samples otherwise.
    `lr_at(i)` is the LR after i epochs (per_step: i optimizer steps) of the run."""
    steps_per_epoch = max(1, steps_per_epoch)
    unit = 1.0 / steps_per_epoch if per_step else 1.0
    first = start_epoch * steps_per_epoch if per_step else start_epoch
    remaining = max(0, num_epochs - start_epoch) * (steps_per_epoch if per_step else 1)
    last = remaining - 1 if per_step else remaining  # a per-step schedule ends one step short of the end
    if last <= 0:
        return ((float(start_epoch), lr_at(first)),)
    count = min(max_points, last)
    offsets = sorted({round(j * last / count) for j in range(count + 1)})
    return tuple((start_epoch + i * unit, lr_at(first + i)) for i in offsets)
