"""The step metrics waiting on the device to be read back.

Each step adds its loss, outputs and targets as tensors and nothing is read back then: a
read-back waits for the device, so it happens a few times a second (and before anything that
needs the numbers: a save, a pause, the epoch's end), one transfer for the whole window.
"""

from __future__ import annotations

import torch

MAX_ELEMENTS = 8_000_000  # read back sooner when the buffered outputs grow past this


class MetricWindow:
    def __init__(self, max_elements: int = MAX_ELEMENTS) -> None:
        self.max_elements = max_elements
        self._losses: list[torch.Tensor] = []
        self._outputs: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self.samples = 0  # in the window
        self.elements = 0  # output elements buffered

    def add(self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self._losses.append(loss.detach())
        self._outputs.append(outputs.detach())
        self._targets.append(targets)
        size = targets.size(0)
        self.sizes.append(size)
        self.samples += size
        self.elements += outputs.numel()

    @property
    def full(self) -> bool:
        return self.elements > self.max_elements

    def __len__(self) -> int:
        return len(self.sizes)

    def read(self) -> tuple[list[float], list[int], int]:
        """(each step's loss, each step's batch size, correct predictions in the window), read back
        in one transfer; the window is empty afterwards, whatever happens."""
        try:
            if not self.sizes:
                return [], [], 0
            preds = torch.cat(self._outputs).argmax(dim=1)
            correct = (preds == torch.cat(self._targets)).sum().float().view(1)
            values = torch.cat([torch.stack(self._losses).float().view(-1), correct]).tolist()
            return values[:-1], list(self.sizes), int(values[-1])
        finally:
            self.clear()

    def clear(self) -> None:
        self._losses.clear()
        self._outputs.clear()
        self._targets.clear()
        self.sizes.clear()
        self.samples = self.elements = 0
