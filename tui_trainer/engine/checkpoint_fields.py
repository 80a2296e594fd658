"""What a loaded checkpoint must look like, field by field, before anything uses it.

A file can be loadable (a valid zip, only tensors and plain values) and still be wrong: an
`epoch` of 'x', a `config` that is a string, a history that is not a list. Each field read from
disk is checked against its type and range here; a mismatch is one CheckpointError naming the
file and the field, so a resume skips that file (or refuses) instead of failing with a traceback.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ..errors import CheckpointError

MAX_COUNT = 10**15  # epochs, steps and samples beyond this are damage, not progress
MAX_CLASSES = 10_000


class FieldError(ValueError):
    pass


def _int(value: Any, what: str, minimum: int = 0, maximum: int = MAX_COUNT) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise FieldError(f"{what} must be an integer from {minimum} to {maximum:,}, not {value!r:.40}")


def _number(value: Any, what: str, finite: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (finite and not math.isfinite(value)):
        raise FieldError(f"{what} must be a {'finite ' if finite else ''}number, not {value!r:.40}")


def _kind(value: Any, kinds: type | tuple, what: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, kinds):
        names = kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)
        raise FieldError(f"{what} must be a {names}{' or None' if optional else ''}, not {type(value).__name__}")


def _numbers(value: Any, what: str) -> None:
    _kind(value, (list, tuple), what)
    for i, v in enumerate(value):
        _number(v, f"{what}[{i}]")


def _tensor_dict(value: Any, what: str) -> None:
    _kind(value, dict, what)
    for key, tensor in value.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise FieldError(f"{what} must map names to tensors ({key!r:.40} does not)")


def _history(value: Any) -> None:
    _kind(value, dict, "history")
    lengths = set()
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        if key not in value:
            raise FieldError(f"history has no '{key}'")
        _numbers(value[key], f"history.{key}")
        lengths.add(len(value[key]))
    if len(lengths) > 1:
        raise FieldError("history lists have different lengths")


def _early_stopping(value: Any) -> None:
    if value is None:
        return
    _kind(value, dict, "early_stopping")
    if value.get("best_loss") is not None:
        _number(value["best_loss"], "early_stopping.best_loss")
    for key in ("best_epoch", "counter", "calls"):
        _int(value.get(key), f"early_stopping.{key}")
    _kind(value.get("stopped"), bool, "early_stopping.stopped")
    if value.get("best_weights") is not None:
        _tensor_dict(value["best_weights"], "early_stopping.best_weights")


def _epoch_sums(value: Any) -> None:
    if value is None:
        return
    _kind(value, dict, "epoch_sums")
    _number(value.get("loss"), "epoch_sums.loss")
    for key in ("correct", "count", "skipped"):
        _int(value.get(key), f"epoch_sums.{key}")


def _rng(value: Any) -> None:
    _kind(value, dict, "rng")
    python = value.get("python")
    if not (isinstance(python, (tuple, list)) and len(python) == 3 and isinstance(python[1], (tuple, list))
            and all(isinstance(v, int) for v in python[1])):
        raise FieldError("rng.python is not a Python random state")
    numpy = value.get("numpy")
    _kind(numpy, dict, "rng.numpy")
    keys = numpy.get("keys")
    if not (isinstance(keys, torch.Tensor) and keys.numel() == 624):
        raise FieldError("rng.numpy.keys is not a NumPy random state")
    _int(numpy.get("pos"), "rng.numpy.pos", 0, 624)
    _int(numpy.get("has_gauss"), "rng.numpy.has_gauss", 0, 1)
    _number(numpy.get("cached_gaussian"), "rng.numpy.cached_gaussian")
    if not (isinstance(value.get("torch"), torch.Tensor) and value["torch"].dtype == torch.uint8):
        raise FieldError("rng.torch is not a torch random state")
    if "cuda" in value:
        _kind(value["cuda"], (list, tuple), "rng.cuda")


def _lr_changes(value: Any) -> None:
    if value is None:
        return
    _kind(value, (list, tuple), "manual_lr_changes")
    for i, change in enumerate(value):
        what = f"manual_lr_changes[{i}]"
        _kind(change, dict, what)
        _int(change.get("epoch"), f"{what}.epoch")
        _int(change.get("step"), f"{what}.step")
        _positive(change.get("factor"), f"{what}.factor")
        _number(change.get("lr"), f"{what}.lr")
        _kind(change.get("reason", "manual"), str, f"{what}.reason")


def _positive(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise FieldError(f"{what} must be a finite positive number, not {value!r:.40}")


def _confusion(value: Any) -> None:
    if value is None:
        return
    if not (isinstance(value, torch.Tensor) and value.dtype == torch.int64 and value.dim() == 2
            and value.size(0) == value.size(1) and 0 < value.size(0) <= MAX_CLASSES):
        raise FieldError(f"best_confusion must be a square int64 matrix of at most {MAX_CLASSES:,} classes")
    if bool((value < 0).any()):
        raise FieldError("best_confusion holds negative counts")


def _schedule(value: Any) -> None:
    """A schedule's state: a built-in one's (its name and settings), the plateau's, a torch
    scheduler's, or an earlier version's torch scheduler state (converted on load)."""
    if value is None:
        return
    _kind(value, dict, "scheduler_state_dict")
    kind = value.get("schedule")
    if kind == "plateau":
        _number(value.get("best"), "scheduler_state_dict.best")
        _int(value.get("bad_epochs"), "scheduler_state_dict.bad_epochs")
        _positive(value.get("scale"), "scheduler_state_dict.scale")
    elif kind in ("torch", "version 1"):
        _kind(value.get("torch"), dict, "scheduler_state_dict.torch")
        if kind == "torch":
            _numbers(value.get("view"), "scheduler_state_dict.view")
            _positive(value.get("factor_in_view", 1.0), "scheduler_state_dict.factor_in_view")
        else:
            _positive(value.get("manual_factor"), "scheduler_state_dict.manual_factor")
            _positive(value.get("plateau_scale"), "scheduler_state_dict.plateau_scale")
    elif not isinstance(kind, str):
        raise FieldError("scheduler_state_dict does not say which schedule it is")


def _optimizer(value: Any) -> None:
    _kind(value, dict, "optimizer_state_dict")
    _kind(value.get("state"), dict, "optimizer_state_dict.state")
    _kind(value.get("param_groups"), list, "optimizer_state_dict.param_groups")


# field: (required, check)
FIELDS: dict[str, tuple[bool, Callable[[Any], None]]] = {
    "epoch": (True, lambda v: _int(v, "epoch")),
    "model_state_dict": (True, lambda v: _tensor_dict(v, "model_state_dict")),
    "config": (True, lambda v: _kind(v, dict, "config")),
    "step_in_epoch": (False, lambda v: v is None or _int(v, "step_in_epoch")),
    "epoch_sums": (False, _epoch_sums),
    "epoch_start_lr": (False, lambda v: v is None or _number(v, "epoch_start_lr")),
    "global_step": (False, lambda v: _int(v, "global_step")),
    "optimizer_state_dict": (False, _optimizer),
    "scheduler_state_dict": (False, _schedule),
    "scaler_state_dict": (False, lambda v: _kind(v, dict, "scaler_state_dict", optional=True)),
    "early_stopping": (False, _early_stopping),
    "history": (False, _history),
    "best_val_acc": (False, lambda v: _number(v, "best_val_acc")),
    "best_epoch": (False, lambda v: _int(v, "best_epoch")),
    "manual_lr_changes": (False, _lr_changes),
    "lr_factor": (False, lambda v: _positive(v, "lr_factor")),
    "best_val_loss": (False, lambda v: v is None or _number(v, "best_val_loss")),
    "best_confusion": (False, _confusion),
    "rng": (False, _rng),
    "loader": (False, lambda v: _kind(v, dict, "loader", optional=True)),
    "num_classes": (False, lambda v: v is None or _int(v, "num_classes", 1)),
    "class_names": (False, lambda v: _kind(v, (list, tuple), "class_names", optional=True)),
    "model_name": (False, lambda v: _kind(v, str, "model_name", optional=True)),
    "active_time": (False, lambda v: _number(v, "active_time", finite=True)),
    "world_size": (False, lambda v: _int(v, "world_size", 1)),
    "rank_rng": (False, lambda v: _kind(v, (list, tuple), "rank_rng", optional=True)),
}

# What a resume reads on top of the weights (best_model.pth for the final evaluation needs less).
RESUME_FIELDS = ("global_step", "optimizer_state_dict", "history", "best_val_acc", "best_epoch", "rng")


def upgrade(data: dict) -> dict:
    """A checkpoint of an earlier format in the current one (a new dict; the current format as is).

    Version 1 kept the manual LR factor inside the optimizer's LR and the torch scheduler's state
    (and plateau's cuts in the optimizer's LR): the factor moves to `lr_factor`, and the torch
    state is kept, marked, for the schedule to read what it needs (schedules that are functions
    of the position need nothing). It has no best confusion matrix: the final report then
    validates the best model once, as version 1 did."""
    if data.get("format_version") != 1:
        return data
    data = dict(data, format_version=2, best_confusion=None)
    changes = data.get("manual_lr_changes") or []
    manual = _product(changes, "manual")
    data["lr_factor"] = manual
    if isinstance(data.get("scheduler_state_dict"), dict):
        data["scheduler_state_dict"] = {"schedule": "version 1", "torch": data["scheduler_state_dict"],
                                        "manual_factor": manual, "plateau_scale": _product(changes, "plateau")}
    return data


def _product(changes, reason: str) -> float:
    product = 1.0
    for change in changes if isinstance(changes, (list, tuple)) else ():
        factor = change.get("factor") if isinstance(change, dict) else None
        if isinstance(change, dict) and change.get("reason", "manual") == reason and isinstance(factor, (int, float)) \
                and not isinstance(factor, bool) and math.isfinite(factor) and factor > 0:
            product *= factor
    return product


def check_fields(data: dict, path, resumable: bool = True) -> None:
    """Raise CheckpointError naming `path` and the first field that is missing, of the wrong type
    or out of range. resumable: also require what a resume needs."""
    for name, (required, check) in FIELDS.items():
        if name not in data:
            if required or (resumable and name in RESUME_FIELDS):
                raise CheckpointError(f"checkpoint {path} is incomplete (no '{name}')")
            continue
        try:
            check(data[name])
        except FieldError as exc:
            raise CheckpointError(f"checkpoint {path} is damaged: {exc}") from None
    if data.get("step_in_epoch") and data.get("epoch_sums") is None:
        raise CheckpointError(f"checkpoint {path} is damaged: a mid-epoch checkpoint without its epoch_sums")
