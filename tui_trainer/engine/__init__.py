"""The training engine. It imports no Textual or Rich: the views live in `frontends`."""

from .checkpoint import atomic_save, find_resumable, load_run_checkpoint, safe_load
from .control import Control
from .diagnose import diagnose_training_issues
from .early_stopping import EarlyStopping
from .loop import Trainer, train_epoch, validate_epoch
from .metrics import classification_metrics, evaluate_classification
from .precision import resolve_precision
from .schedulers import create_scheduler, planned_lrs
from .system import PerformanceMonitor, SystemMonitor

__all__ = [
    "Control", "EarlyStopping", "PerformanceMonitor", "SystemMonitor", "Trainer", "atomic_save",
    "classification_metrics", "create_scheduler", "diagnose_training_issues", "evaluate_classification",
    "find_resumable", "load_run_checkpoint", "planned_lrs", "resolve_precision", "safe_load",
    "train_epoch", "validate_epoch",
]
