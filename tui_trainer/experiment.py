"""Experiment files: `tui-trainer run exp.py [flags]`, where exp.py is the user's own Python.

The file defines `build_model(cfg)` and `build_data(cfg)`, and may define
`build_optimizer(cfg, params)`, `build_loss(cfg)` and a `defaults` dict of settings (the flags'
names: `{"epochs": 20, "batch-size": 64}`). `cfg` is the run's resolved RunConfig: the
experiment recipe, then `defaults`, then a --config file, then the flags given.

This module is the torch-free side: recognising such a file, loading it (the bytes read are the
bytes run), reading its defaults, and copying it into the run directory, so that `resume` runs
the same code. `experiment_run.py` builds and checks what the file's functions return.
"""

from __future__ import annotations

import hashlib
import os
import sys
import types
from pathlib import Path
from typing import Any

from .errors import UserCodeError, UserError

COPY_NAME = "experiment.py"  # the copy of the file in each run directory, run by `resume`
MODEL_NAME = "experiment:build_model"  # what config.model records: the file's build_model builds it
MAX_FILE_BYTES = 10_000_000  # a Python file beyond this is not an experiment file
RUN_NAME = "experiment"  # the model part of a default run directory's name: runs/exp-experiment-<time>


def is_experiment_file(dataset: Any) -> bool:
    return isinstance(dataset, str) and dataset.lower().endswith(".py")


def resolve_file(dataset: str) -> str:
    """The file as an absolute path (a resume may start elsewhere); UserError when it is not one."""
    path = Path(dataset).expanduser()
    if not path.exists():
        raise UserError(f"experiment file {dataset} does not exist; give the path of a Python file that defines "
                        "build_model(cfg) and build_data(cfg)")
    if not path.is_file():
        raise UserError(f"experiment file {dataset} is not a file; give the path of a Python file that defines "
                        "build_model(cfg) and build_data(cfg)")
    return str(path.resolve())


def read_source(path: Path, *, in_run_dir: bool = False) -> bytes:
    """The file's bytes (the copy in a run directory is opened without following a link)."""
    try:
        if in_run_dir:
            from .runlog import open_run_file

            fh = open(open_run_file(path, os.O_RDONLY), "rb")
        else:
            fh = open(path, "rb")
        with fh:
            source = fh.read(MAX_FILE_BYTES + 1)
    except UserError:
        raise
    except OSError as exc:
        raise UserError(f"cannot read experiment file {path}: {exc.strerror or exc}") from None
    if len(source) > MAX_FILE_BYTES:
        raise UserError(f"experiment file {path} is over 10 MB; is it the right file?")
    return source


def load(path: Path, source: bytes, *, original: Path | None = None) -> types.ModuleType:
    """Run `source` (the bytes of `path`) as a module. `original`: the file a run directory's copy
    was made from; its folder is where the code's neighbours and `__file__` point, so a resumed
    run finds what the file finds next to it. Cached by content: the same bytes run once.

    A file that is not Python text, or has a syntax error, is one line (UserError); an exception
    raised while it runs is the user's bug (UserCodeError: their traceback, exit 1)."""
    original = original or path
    digest = hashlib.sha256(source).hexdigest()
    name = f"tui_trainer_experiment_{digest[:16]}"
    cached = sys.modules.get(name)
    if cached is not None and getattr(cached, "__file__", None) == str(original):
        return cached
    try:
        text = source.decode("utf-8")
        if "\x00" in text:
            raise ValueError("it holds NUL bytes")
    except (UnicodeDecodeError, ValueError):
        raise UserError(f"experiment file {original} is not Python source (not UTF-8 text); give a .py file that "
                        "defines build_model(cfg) and build_data(cfg)") from None
    try:
        code = compile(text, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise UserError(f"experiment file {original} is not valid Python: {exc.msg} (line {exc.lineno}); fix it "
                        "or give the right file") from None
    folder = str(original.parent)
    if folder not in sys.path:  # as when the file is run as a script: its neighbours import
        sys.path.insert(0, folder)
    module = types.ModuleType(name)
    module.__file__ = str(original)
    sys.modules[name] = module  # dataclasses and pickling (DataLoader workers) look classes up here
    try:
        exec(code, module.__dict__)  # noqa: S102 - the user's own file, which they asked us to run
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise UserCodeError(f"importing {original} raised {type(exc).__name__} (traceback above); fix that "
                            "file") from exc
    return module


def load_file(dataset: str) -> types.ModuleType:
    path = Path(dataset)
    return load(path, read_source(path))


def load_for_run(config, run_dir: Path | None) -> tuple[types.ModuleType, str]:
    """The module a run executes: the copy in its run directory when there is one (a resume),
    else the original. Returns (module, a warning for the log when the original has changed
    since the copy was made, or "")."""
    original = Path(config.dataset)
    copy = Path(run_dir) / COPY_NAME if run_dir is not None else None
    if copy is None or not os.path.lexists(copy):
        return load(original, read_source(original)), ""
    source = read_source(copy, in_run_dir=True)
    return load(copy, source, original=original), changed_warning(original, source, copy)


def changed_warning(original: Path, copy_source: bytes, copy: Path) -> str:
    try:
        now = read_source(original)
    except UserError:
        return f"{original} is gone or unreadable; running the copy the run started with ({copy})"
    if now == copy_source:
        return ""
    return f"{original} has changed since this run started; running the copy the run started with ({copy})"


def copy_into_run(config, run_dir: Path) -> None:
    """Keep the experiment file in the run directory (atomically, never through a planted link),
    so `resume` runs the code the run started with. Nothing for other runs."""
    if not is_experiment_file(config.dataset):
        return
    from .runlog import atomic_write

    check_no_copy(Path(run_dir))
    target = Path(run_dir) / COPY_NAME
    source = read_source(Path(config.dataset))
    atomic_write(target, lambda fh: fh.write(source), binary=True)


def check_copy(run_dir: Path) -> None:
    """A resume of an experiment-file run needs the copy the run started with."""
    copy = Path(run_dir) / COPY_NAME
    if not os.path.lexists(copy):
        raise UserError(f"{copy} is missing: a resume runs the experiment file's copy the run started with; "
                        "put it back, or start a new run")


def check_no_copy(run_dir: Path) -> None:
    """A new run never replaces a file of the user's (a --run-dir that already holds one)."""
    if os.path.lexists(Path(run_dir) / COPY_NAME):
        raise UserError(f"run directory {run_dir} already holds {COPY_NAME}, where a run keeps its experiment file's "
                        "copy; choose another --run-dir")


def settings_for(dataset: str, overrides: dict) -> dict[str, Any]:
    """The file's `defaults`, as RunConfig fields (checked as a --config file's settings are).
    Refuses --model and --pretrained: the file's build_model builds the model."""
    for key, flag in (("model", "--model"), ("pretrained", "--pretrained")):
        if overrides.get(key) not in (None, False, MODEL_NAME):
            raise UserError(f"{flag} does not apply to an experiment file: its build_model(cfg) builds the model "
                            f"(read cfg's settings there, or load weights in it)")
    module = load_file(dataset)
    defaults = getattr(module, "defaults", None)
    if defaults is None:
        return {"model": MODEL_NAME}
    if not isinstance(defaults, dict):
        raise UserError(f"{dataset}: defaults must be a dict of settings (e.g. {{\"epochs\": 20}}), got "
                        f"{type(defaults).__name__}")
    from .config_file import _convert, _settings

    if not all(isinstance(key, str) for key in defaults):
        raise UserError(f"{dataset}: the keys of defaults must be setting names (strings), e.g. \"epochs\"")
    label = Path(f"{dataset} defaults")
    settings = {key: _convert(label, key, value) for key, value in _settings(label, defaults).items()}
    for key in ("dataset", "model", "pretrained"):
        if key in settings:
            raise UserError(f"{dataset}: defaults cannot set {key}: the file itself is the run's data and model")
    return {**settings, "model": MODEL_NAME}
