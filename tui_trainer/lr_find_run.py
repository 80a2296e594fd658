"""The LR range test for a run described by a RunConfig: the sweep on the run's own model,
optimizer, loss and training data, its record (`lr_find.json`), and `run --lr find`.

The sweep itself is the engine's (engine/lr_finder.py); here is what the command line needs
around it. Nothing here imports torch at module level.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import UserError

RESULT_NAME = "lr_find.json"
FIND_KEY = "lr_find"  # in RunConfig.extra: `run --lr find` asked for the sweep before training
DEFAULTS = {"lr_min": 1e-7, "lr_max": 10.0, "steps": 100}


@dataclass(frozen=True)
class Sweep:
    """What a sweep was asked to do."""

    lr_min: float = DEFAULTS["lr_min"]
    lr_max: float = DEFAULTS["lr_max"]
    steps: int = DEFAULTS["steps"]


def check_sweep(lr_min: Any, lr_max: Any, steps: Any) -> Sweep:
    """The sweep's range and length, or one UserError line."""
    for flag, value in (("--lr-min", lr_min), ("--lr-max", lr_max)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise UserError(f"{flag} must be a positive number, got {value!r:.40}")
    if lr_min >= lr_max:
        raise UserError(f"--lr-min ({lr_min:g}) must be below --lr-max ({lr_max:g}): the LR grows from one to the "
                        "other")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 5 <= steps <= 100_000:
        raise UserError(f"--steps must be an integer from 5 to 100000, got {steps!r:.40}")
    return Sweep(float(lr_min), float(lr_max), steps)


def lr_flag(text: str):
    """--lr: a learning rate, or `find` (the range test first, then train with its suggestion)."""
    if text.strip().lower() == "find":
        return "find"
    try:
        return float(text)
    except ValueError:
        import argparse

        # argparse's own wording for a bad number, then the other choice
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r:.40} (a learning rate, or `find`)") from None


def request_find(config):
    """The config of a run that finds its LR first (`run --lr find`)."""
    if "RANK" in os.environ and os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1"):
        raise UserError("--lr find runs in one process: run `tui-trainer lr-find` first, then torchrun with "
                        "--lr set to its suggestion")
    return config.replace(extra={**config.extra, FIND_KEY: True})


def sweep(config, data, model, optimizer, device, sweep_args: Sweep, *, progress=None, should_stop=None,
          criterion=None):
    """The range test on a run's built parts (the engine's sweep, with the run's loss, clipping,
    precision, accumulation and memory format)."""
    from .engine.lr_finder import range_test
    from .engine.precision import resolve_precision
    from .run_parts import parts_for

    precision = resolve_precision(config.amp, device)
    if criterion is None:  # the run's loss: an experiment file's own, else cross-entropy
        criterion = parts_for(config).build_loss(config)
    return range_test(model, optimizer, criterion, data.train_loader, device,
                      lr_min=sweep_args.lr_min, lr_max=sweep_args.lr_max, steps=sweep_args.steps,
                      accum_steps=config.accum_steps, clip_grad=config.clip_grad, scaler=precision.make_scaler(),
                      autocast=precision.autocast, channels_last=config.channels_last, progress=progress,
                      should_stop=should_stop)


def build_parts(config, emit: Callable | None = None):
    """(data, model, optimizer, device) for a sweep, built as a run builds them."""
    import torch

    from .run_parts import parts_for
    from .runner import resolve_device, seed_everything

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    parts = parts_for(config)  # the built-in data and models, or an experiment file's
    data = parts.build_data(config, device, emit=emit)
    model = parts.build_model(config, data, emit).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return data, model, parts.build_optimizer(config, model.parameters(), device), device


def as_record(result, config) -> dict:
    """lr_find.json: the sweep's settings, every step, both suggestions and the one to train with."""
    def point(i):
        return None if i is None else {"step": i + 1, "lr": result.lrs[i], "smoothed_loss": result.smoothed[i]}

    return {
        "dataset": config.dataset, "model": config.model, "optimizer": config.optimizer,
        "weight_decay": config.weight_decay, "batch_size": config.batch_size, "accum_steps": config.accum_steps,
        "lr_min": result.lr_min, "lr_max": result.lr_max, "steps": result.steps, "steps_done": len(result.lrs),
        "stopped_early": result.stopped_early, "suggested_lr": result.suggested_lr,
        "suggested_by": "valley" if result.valley is not None else "steepest",
        "steepest": point(result.steepest), "valley": point(result.valley),
        "points": [{"step": i + 1, "lr": lr, "loss": loss, "smoothed_loss": s}
                   for i, (lr, loss, s) in enumerate(zip(result.lrs, result.losses, result.smoothed))],
    }


def result_from_record(record: dict):
    """The sweep an lr_find.json describes (to draw it again)."""
    from .engine.lr_finder import RangeTest

    points = record["points"]

    def index(mark):
        return None if not mark else int(mark["step"]) - 1

    return RangeTest(tuple(float(p["lr"]) for p in points), tuple(float(p["loss"]) for p in points),
                     tuple(float(p["smoothed_loss"]) for p in points), float(record["lr_min"]),
                     float(record["lr_max"]), int(record["steps"]), index(record["steepest"]),
                     index(record["valley"]), bool(record["stopped_early"]))


def no_suggestion(result) -> UserError:
    return UserError(f"the sweep stopped after {len(result.lrs)} step(s), too few to suggest an LR (the loss "
                     "diverged at once): lower --lr-min, or check the data and model with `tui-trainer diagnose`")


def find_in_run(config, data, model, optimizer, device, run_dir: Path, emit, control=None, criterion=None):
    """`run --lr find`: sweep on the run's freshly built parts (put back as they were), record
    lr_find.json and the chosen LR in config.json (so a resume trains with it), and set it as
    the optimizer's LR. Returns the run's config with the LR it trains with.

    A stop asked for during the sweep (a key, a signal) ends it; the run then stops at its first
    step boundary, before training, so no LR is chosen."""
    from . import events as ev
    from .runlog import CONFIG_NAME, write_json_atomic

    plan = Sweep()
    emit(ev.Preparing(stage="finding the learning rate",
                      detail=f"range test, {plan.steps} steps from {plan.lr_min:g} to {plan.lr_max:g}"))
    def stop_asked() -> bool:
        return control is not None and control.pending and control.stop_reason is not None

    result = sweep(config, data, model, optimizer, device, plan, should_stop=stop_asked, criterion=criterion)
    if stop_asked():
        return config
    chosen = result.suggested_lr
    if chosen is None:
        raise no_suggestion(result)
    for group in optimizer.param_groups:
        group["lr"] = chosen
    extra = {k: v for k, v in config.extra.items() if k != FIND_KEY}
    config = config.replace(lr=chosen, extra=extra)
    try:
        write_json_atomic(Path(run_dir) / RESULT_NAME, as_record(result, config))
        write_json_atomic(Path(run_dir) / CONFIG_NAME, config.to_dict())
    except OSError as exc:
        raise UserError(f"cannot write the LR range test's result in {run_dir}: {exc.strerror or exc}") from None
    steep = result.lrs[result.steepest] if result.steepest is not None else None
    valley = result.lrs[result.valley] if result.valley is not None else None
    emit(ev.LrFound(lr=chosen, steepest=steep, valley=valley, lr_min=result.lr_min, lr_max=result.lr_max,
                    steps=result.steps, steps_done=len(result.lrs), stopped_early=result.stopped_early))
    return config
