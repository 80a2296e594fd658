"""What a run is built from: its data, model, optimizer and loss, and the model's name in the
header. The built-in datasets and models by name, or an experiment file's functions
(experiment_run.py): the runner, `diagnose` and future commands ask `parts_for(config)` and never
which of the two it is."""

from __future__ import annotations

from pathlib import Path


class BuiltinParts:
    """The datasets and models tui-trainer knows by name (data/, models/)."""

    def build_data(self, config, device, rank: int = 0, world_size: int = 1, emit=None):
        from .data import build_data

        return build_data(config, device, rank=rank, world_size=world_size, emit=emit)

    def build_model(self, config, data, emit=None):
        from .models import build_for_run

        return build_for_run(config, data, emit)

    def build_optimizer(self, config, params, device=None):
        from .runner import build_optimizer

        return build_optimizer(config, params, device)

    def build_loss(self, config):
        import torch

        return torch.nn.CrossEntropyLoss()

    def describe(self, config, input_shape) -> str:
        from .models import describe

        return describe(config, input_shape)


def parts_for(config, run_dir: Path | None = None):
    """run_dir: the run's directory, where an experiment file's run keeps the copy it runs."""
    from .experiment import is_experiment_file

    if is_experiment_file(config.dataset):
        from .experiment_run import ExperimentParts

        return ExperimentParts(config, run_dir)
    return BuiltinParts()
