"""The public `Trainer`: the engine's Trainer with the seed's `train()`.

The engine's Trainer trains (`fit`) and knows no views. `train()` here wires a run the way
`tui-trainer run` does - a view (the plain log, the live console or none), stop signals and a
run directory - through a Session (script_run.py); it sits above both the engine and the
frontends, so the engine never imports a view.
"""

from __future__ import annotations

import os

from .engine import EarlyStopping
from .engine import Trainer as _EngineTrainer


class Trainer(_EngineTrainer):
    """Train a classifier. Keeps the seed's constructor and `train()`; adds events, control,
    accumulation, mixed precision, exact resume and crash-safe checkpoints."""

    def train(self, num_epochs: int, scheduler=None, early_stopping: EarlyStopping | None = None,
              ui: str | None = None, resume_from: str | os.PathLike | None = None):
        """Run training; returns (train_losses, train_accs, val_losses, val_accs) like the seed.

        ui: None prints a plain log when no sinks were given; "headless" prints it anyway; "tui"
        opens the live console (the plain log where there is no terminal); "none" stays silent.
        resume_from: a run directory whose newest checkpoint to continue from.
        With a save_dir, the run directory gets config.json, events.jsonl, checkpoints and
        report.json. SIGTERM, SIGHUP and Ctrl-C save last.pth and raise TrainingInterrupted
        (a SystemExit with exit code 143, 129 or 130). See tui_trainer/script_run.py.
        """
        from .script_run import train_from_script

        return train_from_script(self, num_epochs, scheduler, early_stopping, ui, resume_from)


__all__ = ["Trainer"]
