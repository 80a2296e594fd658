"""Models by name: build(name, input_shape, num_classes)."""

from __future__ import annotations

import math


def parameter_count(name: str, input_shape: tuple[int, ...], num_classes: int) -> int:
    """The number of parameters `build_model` would make, without torch (to refuse a model that
    cannot fit before anything is allocated)."""
    if name == "mlp":
        widths = [math.prod(input_shape), 256, 128, num_classes]  # MLP's default hidden sizes
        return sum(a * b + b for a, b in zip(widths, widths[1:]))
    if name == "simplecnn":
        convs = [(input_shape[0], 64), (64, 128), (128, 256)]
        features = sum(i * o * 9 + o + 2 * o for i, o in convs)  # conv weights and bias, BatchNorm
        return features + 256 * 512 + 512 + 512 * num_classes + num_classes
    return 0


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int):
    from .cnn import SimpleCNN
    from .mlp import MLP

    if name == "simplecnn":
        return SimpleCNN(num_classes=num_classes, in_channels=input_shape[0])
    if name == "mlp":
        return MLP(in_features=math.prod(input_shape), num_classes=num_classes)
    from ..errors import UserError

    raise UserError(f"unknown model '{name}'")
