"""The training engine. It imports no Textual or Rich: the views live in `frontends`.

Names load lazily, so `from tui_trainer.engine.control import Control` (the console does
this before its first frame) does not import torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Control": "control",
    "EarlyStopping": "early_stopping",
    "PerformanceMonitor": "system",
    "SystemMonitor": "system",
    "Trainer": "loop",
    "atomic_save": "checkpoint",
    "classification_metrics": "metrics",
    "create_scheduler": "schedulers",
    "diagnose_training_issues": "diagnose",
    "evaluate_classification": "metrics",
    "find_resumable": "checkpoint",
    "load_run_checkpoint": "checkpoint",
    "planned_lrs": "schedulers",
    "resolve_precision": "precision",
    "safe_load": "checkpoint",
    "train_epoch": "loop",
    "validate_epoch": "loop",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tui_trainer.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
