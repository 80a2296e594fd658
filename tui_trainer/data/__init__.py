"""Datasets by name. Importing this package is cheap: each dataset module (and torch) is
imported only when that dataset is built."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

DATASET_MODULES = {
    "digits": "tui_trainer.data.digits",
    "cifar10": "tui_trainer.data.cifar10",
    "synthetic": "tui_trainer.data.synthetic",
}


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


def preflight(config) -> None:
    """Cheap checks before torch loads (raise UserError): is the dataset there at all?"""
    module = importlib.import_module(DATASET_MODULES[config.dataset])
    check = getattr(module, "preflight", None)
    if check is not None:
        check(config)


def build_data(config, device, rank: int = 0, world_size: int = 1) -> DataBundle:
    module = importlib.import_module(DATASET_MODULES[config.dataset])
    return module.build(config, device, rank=rank, world_size=world_size)
