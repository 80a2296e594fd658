"""tui-trainer: train PyTorch models from a terminal.

The public API keeps the seed tutorial's names, so its CIFAR-10 script ports by changing
its imports. Names are loaded lazily: `import tui_trainer` does not import torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Trainer": "tui_trainer.trainer",  # the engine's, with train() wired to the views
    "train_epoch": "tui_trainer.engine.loop",
    "validate_epoch": "tui_trainer.engine.loop",
    "EarlyStopping": "tui_trainer.engine.early_stopping",
    "create_scheduler": "tui_trainer.engine.schedulers",
    "evaluate_classification": "tui_trainer.engine.metrics",
    "diagnose_training_issues": "tui_trainer.engine.diagnose",
    "PerformanceMonitor": "tui_trainer.engine.system",
    "SystemMonitor": "tui_trainer.engine.system",
    "Control": "tui_trainer.engine.control",
    "SimpleCNN": "tui_trainer.models.cnn",
    "MLP": "tui_trainer.models.mlp",
    "TensorLoader": "tui_trainer.data.loader",
    "plot_training_history": "tui_trainer.plots",
    "plot_confusion_matrix": "tui_trainer.plots",
    "TrainingInterrupted": "tui_trainer.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tui_trainer' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
