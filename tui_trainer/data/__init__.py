"""Datasets by name, or a folder of the user's images. Importing this package is cheap: each
dataset module (and torch) is imported only when that dataset is built.

Seams: `build_data(config, device)` returns the run's DataBundle (what an experiment file's
`build_data(cfg)` can replace); `preflight(config)` checks, before anything is written, that
the data are there; `sample_shape(config)` says what one sample looks like without loading them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

DATASET_MODULES = {
    "digits": "tui_trainer.data.digits",
    "cifar10": "tui_trainer.data.cifar10",
    "cifar100": "tui_trainer.data.cifar100",
    "mnist": "tui_trainer.data.mnist",
    "fashion-mnist": "tui_trainer.data.mnist",
    "svhn": "tui_trainer.data.svhn",
    "synthetic": "tui_trainer.data.synthetic",
}
IMAGE_FOLDER_MODULE = "tui_trainer.data.image_folder"


@dataclass
class DataBundle:
    name: str
    train_loader: Any
    val_loader: Any
    num_classes: int
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]  # one sample, e.g. (3, 32, 32)

    @property
    def train_size(self) -> int:
        return len(self.train_loader.dataset)

    @property
    def val_size(self) -> int:
        return len(self.val_loader.dataset)


def _module(config):
    return importlib.import_module(DATASET_MODULES.get(config.dataset, IMAGE_FOLDER_MODULE))


def preflight(config):
    """Cheap checks before torch loads (raise UserError): are the data there at all? Returns the
    config to record (an image folder's adds what its file list was, so a resume can tell)."""
    from ..experiment import is_experiment_file

    if is_experiment_file(config.dataset):  # its build_data is checked with the model (experiment_run.py)
        return config
    check = getattr(_module(config), "preflight", None)
    checked = check(config) if check is not None else None
    return checked if checked is not None else config


def sample_shape(config) -> tuple[tuple[int, ...], int]:
    """(one sample's shape, number of classes), without loading the data."""
    from .. import catalog

    info = catalog.DATASETS.get(config.dataset)
    if config.dataset == "synthetic":
        return tuple(config.synthetic_shape), config.synthetic_classes
    if info is not None and info.input_shape is not None:
        return info.input_shape, info.num_classes
    return _module(config).sample_shape(config)


def build_data(config, device, rank: int = 0, world_size: int = 1, emit=None) -> DataBundle:
    """emit: where a dataset reports what the log should say (skipped images, where the data are
    held), as events; None drops them."""
    return _module(config).build(config, device, rank=rank, world_size=world_size, emit=emit)
