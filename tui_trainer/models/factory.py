"""The user's own model: `--model path/to/file.py:factory` or `--model package.module:factory`,
where `factory(num_classes=..., in_channels=...)` returns a `torch.nn.Module`.

Our errors (no such file, module or function; not a module; the wrong number of outputs) are
one line and exit 2. An exception raised by the user's code is their bug: it is shown with its
traceback (UserCodeError) and the exit code is 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from ..errors import UserCodeError, UserError
from .spec import ModelSpec


def _label(spec: ModelSpec) -> str:
    return f"{spec.source}:{spec.name}"


def load_factory(spec: ModelSpec):
    """The callable a factory spec names."""
    module = _load_file(spec) if spec.is_file else _import_module(spec)
    if not hasattr(module, spec.name):
        raise UserError(f"--model {_label(spec)}: {spec.source} defines no {spec.name}; define "
                        f"{spec.name}(num_classes, in_channels) returning a torch.nn.Module, or name the right function")
    factory = getattr(module, spec.name)
    if not callable(factory):
        raise UserError(f"--model {_label(spec)}: {spec.name} is a {type(factory).__name__}, not a function; "
                        f"name a function that takes num_classes and in_channels and returns a torch.nn.Module")
    return factory


def _load_file(spec: ModelSpec):
    path = Path(spec.source)
    if not path.is_file():
        raise UserError(f"--model {_label(spec)}: no file {path}")
    name = "tui_trainer_user_model_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    folder = str(path.parent)
    if folder not in sys.path:  # as when the file is run as a script: its neighbours import
        sys.path.insert(0, folder)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise UserError(f"--model {_label(spec)}: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise UserCodeError(f"importing {path} raised {type(exc).__name__} (traceback above); fix that file") from exc
    return module


def _import_module(spec: ModelSpec):
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:  # as `python -m` would: modules of the current folder
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(spec.source)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (spec.source == missing or spec.source.startswith(missing + ".")):
            raise UserError(f"--model {_label(spec)}: no module named {missing}; run from the folder that holds it, "
                            "add it to PYTHONPATH, or give the file's path (path/to/file.py:factory)") from None
        raise UserCodeError(f"importing {spec.source} raised ModuleNotFoundError (traceback above); fix that "
                            "module or install what it imports") from exc
    except Exception as exc:  # noqa: BLE001 - their module's own error: their traceback
        raise UserCodeError(f"importing {spec.source} raised {type(exc).__name__} (traceback above); fix that "
                            "module") from exc


def build(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int):
    import torch

    factory = load_factory(spec)
    try:
        model = factory(num_classes=num_classes, in_channels=int(input_shape[0]))
    except Exception as exc:  # noqa: BLE001 - their code's error: their traceback
        raise UserCodeError(f"{_label(spec)}(num_classes={num_classes}, in_channels={input_shape[0]}) raised "
                            f"{type(exc).__name__} (traceback above); fix the factory") from exc
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"--model {_label(spec)}: {spec.name}() returned {type(model).__name__}, not a "
                        "torch.nn.Module; return the model itself")
    return model


def check_output(model, input_shape: tuple[int, ...], num_classes: int, label: str) -> None:
    """One forward pass on a batch of two zero images, in eval mode, without gradients and
    without touching any random generator or BatchNorm statistics: the output must be a tensor
    of shape (2, num_classes)."""
    import torch

    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    batch = torch.zeros((2, *input_shape), device=device)
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.eval()
            try:
                out = model(batch)
            except Exception as exc:  # noqa: BLE001 - their model's error: their traceback
                raise UserCodeError(f"the model {label} raised {type(exc).__name__} on a batch of shape "
                                    f"{tuple(batch.shape)} (traceback above); make it accept "
                                    f"{input_shape[0]}-channel {input_shape[1]}x{input_shape[2]} images") from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise UserError(f"--model {label}: the model returns a {type(out).__name__}, not a tensor of class scores; "
                        "return one tensor of shape (batch, classes) from forward()")
    if tuple(out.shape) != (2, num_classes):
        raise UserError(f"--model {label}: the model's output has shape {tuple(out.shape)} for a batch of 2, but the "
                        f"data have {num_classes} classes; build the last layer with num_classes={num_classes} outputs")


@contextlib.contextmanager
def one_thread():
    """Checking a model on the main thread before the run: one intra-op thread, so no OpenMP team
    is left to compete with the engine thread's (DESIGN.md: 25-35% slower training otherwise)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def preflight(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Before anything is written: import the factory, build the model once, check its output."""
    with one_thread():
        import torch

        with torch.random.fork_rng(devices=[]):
            model = build(spec, input_shape, num_classes)
        check_output(model, input_shape, num_classes, _label(spec))
