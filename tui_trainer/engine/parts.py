"""The registry of everything a checkpoint holds.

Each stateful part - the model, the optimizer, the LR schedule, the GradScaler, early stopping,
the data loader's generator, the random generators and TrainState - is registered once under
its name, and a checkpoint is `{name: part.state_dict()}` of the registry, loaded back by the
same registry (Lightning's build-your-own-trainer `state`, torchtnt's `app_state()`): there is
no second list of keys to keep in step with the first. TrainState is the root part: its fields
are the checkpoint's top-level keys, as the seed's and earlier versions' files have them.
"""

from __future__ import annotations

from typing import Any, Protocol

from . import checkpoint as ckpt
from .checkpoint_writer import clone_tensors


class Stateful(Protocol):
    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> Any: ...


class StatefulParts:
    def __init__(self, root: Stateful) -> None:
        self.root = root
        self._parts: dict[str, tuple[Stateful | None, bool]] = {}

    def register(self, name: str, part: Stateful | None, *, live: bool = False) -> None:
        """`part` None: absent from this run (saved as None, skipped on load). live: training
        changes its tensors in place, so a snapshot clones them."""
        self._parts[name] = (part, live)

    def state_dict(self, snapshot: bool = False, replace: dict | None = None) -> dict:
        """The checkpoint's state; snapshot: nothing in it shares memory with training any more.
        replace: states to store instead of some parts' own (e.g. the weights of a moment ago)."""
        replace = replace or {}
        state = dict(self.root.state_dict())
        for name, (part, live) in self._parts.items():
            if name in replace:
                state[name] = replace[name]
            elif part is None:
                state[name] = None
            else:
                value = part.state_dict()
                state[name] = clone_tensors(value) if snapshot and live else value
        return state

    def load_state_dict(self, state: dict) -> list[str]:
        """Hand each part its entry; returns the names of the parts that got one."""
        loaded = []
        for name, (part, _) in self._parts.items():
            if part is not None and state.get(name) is not None:
                part.load_state_dict(state[name])
                loaded.append(name)
        self.root.load_state_dict(state)
        return loaded


class LoaderState:
    """The training loader's position in its data order, for loaders that can tell it (TensorLoader)."""

    def __init__(self, loader, train_state) -> None:
        self.loader, self.train_state = loader, train_state

    @property
    def resumable(self) -> bool:
        return hasattr(self.loader, "state_dict") and hasattr(self.loader, "load_state_dict")

    def state_dict(self):
        if not self.resumable:
            return None
        return self.loader.state_dict(self.train_state.step_in_epoch)

    def load_state_dict(self, state: dict) -> None:
        if self.resumable:
            self.loader.load_state_dict(state)


# How an optimizer runs, not where it is: torch's load_state_dict takes these from the file's
# groups too, so a run trained on the CPU (plain) and resumed on a GPU (built fused) would lose
# its fused step, and with it the captured one (capture.py); a captured run's checkpoint
# (capturable, fused) would turn them on where this process did not.
_IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable")


class OptimizerState:
    """The optimizer's state in a checkpoint; loading keeps the implementation it was built with."""

    def __init__(self, optimizer) -> None:
        self.optimizer = optimizer

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        groups = state.get("param_groups")
        if isinstance(groups, list) and len(groups) == len(self.optimizer.param_groups):
            # torch places each saved step counter by these keys (on the parameter's device when
            # fused or capturable), so they are set before it loads
            groups = [{**saved, **{key: live[key] for key in _IMPLEMENTATION_KEYS if key in live}}
                      if isinstance(saved, dict) else saved
                      for saved, live in zip(groups, self.optimizer.param_groups)]
            state = {**state, "param_groups": groups}
        self.optimizer.load_state_dict(state)


class RandomState:
    """Python's, NumPy's and torch's generators (CPU and CUDA), as plain tensors."""

    def state_dict(self) -> dict:
        return ckpt.capture_rng()

    def load_state_dict(self, state: dict) -> None:
        ckpt.restore_rng(state)
