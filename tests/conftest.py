"""Fixtures shared by the test modules: small, generic, and free of Textual.

torch is imported inside the fixtures, so collecting a module that needs none of them stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run `tui-trainer ARGS...` in this process; returns CliResult(code, out, err)."""
    from tui_trainer.cli import main

    def run(*argv) -> CliResult:
        capsys.readouterr()  # drop anything printed before the command
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture
def blobs():
    """make(n, features, classes, seed, scale) -> (x float32 [n, features], y int64 [n]):
    one Gaussian cluster per class, so a linear model can learn it."""
    import torch

    def make(n: int = 64, features: int = 8, classes: int = 3, seed: int = 0, scale: float = 1.0):
        g = torch.Generator().manual_seed(seed)
        centres = torch.randn(classes, features, generator=g) * 2
        y = torch.randint(0, classes, (n,), generator=g)
        x = (centres[y] + torch.randn(n, features, generator=g)) * scale
        return x, y

    return make


@pytest.fixture(scope="session")
def recording_sgd():
    """An SGD optimizer class that keeps what each `step()` saw: the gradients (cloned), their
    total L2 norm and the LR; and the `set_to_none` argument of every `zero_grad()`."""
    import torch

    class RecordingSGD(torch.optim.SGD):
        def __init__(self, params, lr: float = 0.0, **kwargs) -> None:
            super().__init__(params, lr=lr, **kwargs)
            self.seen: list[dict] = []
            self.zero_grad_calls: list[bool] = []

        def step(self, closure=None):
            params = [p for group in self.param_groups for p in group["params"]]
            grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
            present = [g.float() for g in grads if g is not None]
            norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in present])))
            self.seen.append({"grads": grads, "norm": norm, "lr": self.param_groups[0]["lr"]})
            return super().step(closure)

        def zero_grad(self, set_to_none: bool = True) -> None:
            self.zero_grad_calls.append(set_to_none)
            super().zero_grad(set_to_none=set_to_none)

    return RecordingSGD


@pytest.fixture(scope="session")
def scripted_optimizer():
    """An optimizer class whose k-th `step()` copies the k-th of a list of state dicts into the
    model, in place (as real optimizers update weights): tests choose exactly what the weights,
    and so the validation scores, are after each optimizer step."""
    import torch

    class ScriptedOptimizer(torch.optim.SGD):
        def __init__(self, model: torch.nn.Module, states: list[dict], lr: float = 0.1) -> None:
            super().__init__(model.parameters(), lr=lr)
            self.model = model
            self.states = states
            self.steps = 0

        @torch.no_grad()
        def step(self, closure=None):
            target = self.states[self.steps]
            for name, param in self.model.named_parameters():
                param.copy_(target[name])
            self.steps += 1

    return ScriptedOptimizer


@pytest.fixture
def one_torch_thread():
    """torch on one thread during the test. On a busy 2-core machine two OpenMP threads stall
    each other and small models train several times slower; results do not depend on it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
