"""Clipping and clearing the gradients once per optimizer step, without the per-call work of the
general-purpose torch functions.

- `GradClipper` clips to a total 2-norm with the kernels `torch.nn.utils.clip_grad_norm_` uses
  (`_foreach_norm`, the stacked norm, `max_norm / (norm + 1e-6)` clamped at 1, `_foreach_mul_`),
  so the gradients and the returned norm are bit for bit the same (tests/test_grads.py). What it
  leaves out is what that function repeats on every call: listing the parameters, grouping the
  gradients by device and dtype (twice) and checking each one's type for the foreach API.
  Whether the parameters share one dtype and one device that supports foreach is checked once an
  epoch, at the first call (after a backward: lazy modules have their parameters by then); with
  several devices or dtypes, or a tensor subclass, torch's function does the clipping.
- `clear_grads` sets each gradient to None, which is all `Optimizer.zero_grad(set_to_none=True)`
  does (PyTorch's performance tuning guide recommends it); an optimizer that defines its own
  zero_grad has it called.

On a small model it shows: on a 64-128-10 MLP on the CPU the two together take ~37 us less per
step, about a tenth of the step (benchmarks/README.md, the job rows).
"""

from __future__ import annotations

import torch


def _foreach_device(device: torch.device) -> bool:
    try:
        from torch.utils._foreach_utils import _device_has_foreach_support
    except ImportError:  # a torch without it: torch's own function decides each time
        return False
    return bool(_device_has_foreach_support(device))


class GradClipper:
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.params: list[torch.Tensor] | None = None
        self.fast = False

    def refresh(self) -> None:
        """Look at the model's parameters again at the next call (each epoch: a model may have
        gained some)."""
        self.params = None

    def _setup(self) -> list[torch.Tensor]:
        params = self.params = list(self.model.parameters())
        kinds = {(p.device, p.dtype) for p in params}
        self.fast = len(kinds) == 1 and _foreach_device(next(iter(kinds))[0])
        return params

    def __call__(self, max_norm: float) -> torch.Tensor:
        """Scale the gradients so their total 2-norm is at most `max_norm`; returns the norm
        before clipping, as torch.nn.utils.clip_grad_norm_ does."""
        params = self.params if self.params is not None else self._setup()
        grads = [p.grad for p in params if p.grad is not None]
        if not self.fast or not grads or any(type(g) is not torch.Tensor for g in grads):
            return torch.nn.utils.clip_grad_norm_(params, max_norm)
        with torch.no_grad():
            total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
            torch._foreach_mul_(grads, torch.clamp(float(max_norm) / (total + 1e-6), max=1.0))
        return total


def clear_grads(optimizer: torch.optim.Optimizer) -> None:
    """optimizer.zero_grad(set_to_none=True), without its per-call overhead."""
    if type(optimizer).zero_grad is not torch.optim.Optimizer.zero_grad:
        optimizer.zero_grad(set_to_none=True)
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None
