"""`--config run.toml`: the run's settings in a TOML file, with the same keys as the flags
(`batch-size = 128`; `batch_size` works too). The resolved config is the dataset's recipe, then
the file, then the flags. `--print-config` writes it back as TOML, which `--config` reads.

torch-free: the file is read and checked before anything heavy loads. Python 3.11+ reads TOML
with the standard library's tomllib; 3.10 with tomli (a conditional dependency).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from .errors import UserError

INT_KEYS = ("epochs", "batch_size", "eval_batch_size", "plateau_patience", "patience", "accum_steps", "seed",
            "limit_batches", "checkpoint_every", "synthetic_classes", "synthetic_train", "synthetic_val", "threads",
            "image_size", "workers")
FLOAT_KEYS = ("lr", "weight_decay", "momentum", "min_delta", "clip_grad", "val_split", "memory_budget")
TEXT_KEYS = ("dataset", "model", "optimizer", "scheduler", "monitor", "amp", "on_nan", "run_dir", "data_dir", "device",
             "cuda_graphs")
BOOL_KEYS = ("restore_best", "augment", "channels_last", "compile", "download", "pretrained")
SHAPE_KEYS = ("synthetic_shape",)
# The order --print-config writes them in: what is trained, how, then where.
ORDER = ("dataset", "model", "pretrained", "epochs", "batch_size", "eval_batch_size", "lr", "weight_decay",
         "optimizer", "momentum", "scheduler", "plateau_patience", "patience", "monitor", "min_delta", "restore_best",
         "accum_steps", "clip_grad", "amp", "on_nan", "augment", "channels_last", "compile", "cuda_graphs", "seed",
         "limit_batches", "checkpoint_every", "run_dir", "data_dir", "download", "device", "threads", "val_split",
         "image_size", "memory_budget", "workers", "synthetic_shape", "synthetic_classes", "synthetic_train", "synthetic_val")
KEYS = frozenset(ORDER)
MAX_FILE_BYTES = 1_000_000


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ImportError:  # pragma: no cover - installed with the package on 3.10
        raise UserError('--config needs tomli on Python 3.10; pip install tomli (or pip install -e ".")') from None
    return tomli


def _flag(key: str) -> str:
    return key.replace("_", "-")


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def load(path: str | Path) -> dict[str, Any]:
    """The file's settings as RunConfig fields; UserError (one line) for anything wrong with it."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UserError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise UserError(f"the config file {path} is over 1 MB; is it the right file?")
    toml = _toml()
    try:
        data = toml.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"the config file {path} is not UTF-8 text") from None
    except toml.TOMLDecodeError as exc:
        raise UserError(f"the config file {path} is not valid TOML ({exc})") from None
    return {key: _convert_file_value(path, key, value) for key, value in _settings(path, data).items()}


def _convert_file_value(path: Path, key: str, value: Any) -> Any:
    if key == "lr" and isinstance(value, str):
        if value.strip().lower() == FIND:
            return FIND
        raise UserError(f'{path}: lr must be a finite number or "find", got {_kind(value)} ({value!r:.40})')
    return _convert(path, key, value)


FIND = "find"  # lr = "find": the LR range test first, as `--lr find` (what --print-config writes for it)


SUGGEST_CUTOFF = 0.8  # difflib's ratio: 'batchsize' -> batch-size (0.95), never 'headless' -> threads (0.67)


def _unknown(path: Path, raw_key: str, key: str) -> UserError:
    from .cli_parser import run_flag_settings

    dest = run_flag_settings().get(key)
    if dest in KEYS:  # a negating flag: --no-download is download = false
        return UserError(f"{path}: '{raw_key}' is the flag --{_flag(key)}; in a config file write "
                         f"{_flag(dest)} = false")
    if dest is not None:  # --headless, --detach, --print-config, ...: how to run, not what to train
        return UserError(f"{path}: '{raw_key}' is a command-line flag, not a config key: pass --{_flag(key)} "
                         "on the command line")
    from .models.spec import closest

    matches = closest(_flag(key), sorted(_flag(k) for k in KEYS), cutoff=SUGGEST_CUTOFF)
    hint = f" (did you mean {', '.join(matches)}?)" if matches else ""
    return UserError(f"{path}: unknown setting '{raw_key}'{hint}; the keys are the flags of `tui-trainer run "
                     "--help` without the dashes in front")


def _settings(path: Path, data: dict) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in KEYS:
            raise _unknown(path, raw_key, key)
        if key in settings:
            raise UserError(f"{path}: '{raw_key}' is set twice (as {_flag(key)} and {key})")
        settings[key] = value
    return settings


def _convert(path: Path, key: str, value: Any) -> Any:
    def wrong(expected: str) -> UserError:
        return UserError(f"{path}: {_flag(key)} must be {expected}, got {_kind(value)} ({value!r:.40})")

    if key in INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if key in FLOAT_KEYS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise wrong("a finite number")
        return float(value)
    if key in TEXT_KEYS:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if key in BOOL_KEYS:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if isinstance(value, str):  # the synthetic shape, as the flag writes it: "3x32x32"
        from .config import parse_shape

        return parse_shape(value)
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                           for v in value):
        return tuple(value)
    raise wrong('"CxHxW" (e.g. "3x32x32") or an array of three integers')


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple):
        return json.dumps("x".join(str(v) for v in value))
    return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's basic-string escapes


def to_toml(config) -> str:
    """The resolved config as TOML that `--config` reads back to the same config."""
    from .lr_find_run import FIND_KEY

    values = config.to_dict()
    if config.extra.get(FIND_KEY):  # `--lr find`: the sweep decides the LR, so the file asks for it too
        values["lr"] = FIND
    lines = ["# tui-trainer run settings: the dataset's recipe, then --config, then flags",
             "# (`tui-trainer run --config FILE` reads this back; a flag given with it still wins)"]
    for key in ORDER:
        value = values.get(key)
        if isinstance(value, list):
            value = tuple(value)
        lines.append(f"# {_flag(key)} = (not set)" if value is None else f"{_flag(key)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
