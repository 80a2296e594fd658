"""Models by name: build(name, input_shape, num_classes)."""

from __future__ import annotations

import math


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int):
    from .cnn import SimpleCNN
    from .mlp import MLP

    if name == "simplecnn":
        return SimpleCNN(num_classes=num_classes, in_channels=input_shape[0])
    if name == "mlp":
        return MLP(in_features=math.prod(input_shape), num_classes=num_classes)
    from ..errors import UserError

    raise UserError(f"unknown model '{name}'")
