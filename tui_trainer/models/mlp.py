"""A small multilayer perceptron; flattens its input."""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int = 10, hidden: Sequence[int] = (256, 128),
                 dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
