"""Events read back from disk, and event text shown on a terminal: both untrusted.

`read_event_log` checks each line of an events.jsonl as it reads it - UTF-8, JSON, a known
event, every field of its declared type and within a range - and skips (and counts) what fails,
so a damaged or hand-made file can neither crash a view nor make it allocate without bound (an
epoch number of 1e9 once made the console's report grow past 4 GB). `printable` escapes the
control characters a run name or message may carry before a view prints it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from typing import Any

from .events import EVENT_TYPES, Event, EvaluationReport, RunStarted

_FLOAT_WORDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

MAX_EPOCH = 1_000_000  # as config.MAX_EPOCHS
MAX_INT = 10**15
MAX_CLASSES = 10_000
_EPOCH_FIELDS = frozenset({"epoch", "num_epochs", "start_epoch", "best_epoch", "epochs_completed"})
# Metrics that may legitimately be NaN or infinite; every other number (times, rates, sizes) is finite.
_NON_FINITE_OK = frozenset({"loss", "acc", "epoch_loss", "epoch_acc", "train_loss", "train_acc", "val_loss",
                            "val_acc", "lr", "old_lr", "new_lr", "best_score", "best_val_acc", "accuracy",
                            "precision", "recall", "f1", "macro_precision", "macro_recall", "macro_f1",
                            "per_class_precision", "per_class_recall", "per_class_f1"})
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """`value` as the type `hint` declares (lists to tuples, 'nan' to a float, dicts to GpuSample);
    raises ValueError when it is not one, or out of range."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, name)
            except ValueError:
                continue
        raise ValueError(f"{name}: {value!r:.40} is none of {hint}")
    if hint is type(None):
        if value is not None:
            raise ValueError(f"{name}: expected null")
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false")
        return value
    if hint is int:
        limit = MAX_EPOCH if name in _EPOCH_FIELDS else MAX_INT
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise ValueError(f"{name}: expected an integer from 0 to {limit}, got {value!r:.40}")
        return value
    if hint is float:
        if isinstance(value, str) and value in _FLOAT_WORDS:
            value = _FLOAT_WORDS[value]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}: expected a number, got {value!r:.40}")
        if not math.isfinite(value) and name not in _NON_FINITE_OK:
            raise ValueError(f"{name}: expected a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string")
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], name) for v in value)
        if len(value) != len(args):
            raise ValueError(f"{name}: expected {len(args)} values")
        return tuple(_coerce(v, a, name) for v, a in zip(value, args))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"{name}: expected an object")
        return hint(**_fields_of(hint, value))
    raise ValueError(f"{name}: unsupported type {hint}")


def _fields_of(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"missing {f.name}")
    return kwargs


def _check_shapes(event: Event) -> None:
    """Sizes that views loop over must agree and stay small."""
    if isinstance(event, EvaluationReport):
        n = len(event.class_names)
        per_class = (event.per_class_precision, event.per_class_recall, event.per_class_f1, event.support)
        if n > MAX_CLASSES or any(len(v) != n for v in per_class) or len(event.confusion_matrix) != n \
                or any(len(row) != n for row in event.confusion_matrix):
            raise ValueError("EvaluationReport: per-class sizes disagree")
    elif isinstance(event, RunStarted):
        if len(event.class_names) > MAX_CLASSES or event.num_classes > MAX_CLASSES:
            raise ValueError("RunStarted: too many classes")


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from its JSON form (unknown keys from newer versions are ignored).
    Raises ValueError when a field is missing, of the wrong type or out of range."""
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise ValueError("not an event")
    cls = EVENT_TYPES.get(data["event"])
    if cls is None:
        raise ValueError(f"unknown event {data['event']!r:.40}")
    event = cls(**_fields_of(cls, data))
    _check_shapes(event)
    return event


MAX_LINE_BYTES = 16 * 1024 * 1024  # a longer line is damage (the largest real one, a report, is far shorter)


def read_event_log(path) -> tuple[list[Event], int]:
    """Read an events.jsonl file: (the events, how many lines were skipped as unreadable).

    Each line is checked as it is read - UTF-8, JSON, a known event, every field of its type and
    range - and one that fails is skipped and counted: a torn last line left by a crash, a
    damaged byte, a hand-edited field. No line is held beyond MAX_LINE_BYTES."""
    events: list[Event] = []
    skipped = 0
    with open(path, "rb") as fh:
        while True:
            line = fh.readline(MAX_LINE_BYTES + 1)
            if not line:
                break
            if len(line) > MAX_LINE_BYTES:
                skipped += 1
                while line and not line.endswith(b"\n"):  # the rest of it, a bounded piece at a time
                    line = fh.readline(1 << 20)
                continue
            line = line.strip()
            if not line:
                continue
            try:
                events.append(parse_event_line(line))
            except ValueError:
                skipped += 1
    return events, skipped


def parse_event_line(line: bytes) -> Event:
    """One line of an events.jsonl as an event; ValueError for anything else (bad UTF-8, bad
    JSON, nesting too deep, an unknown event, a field of the wrong type or out of range)."""
    try:
        return event_from_dict(json.loads(line.decode("utf-8")))
    except (TypeError, RecursionError, OverflowError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"not an event ({type(exc).__name__})") from None


def skipped_notice(skipped: int, path, t: float) -> Event:
    """The warning `show` gives for the lines read_event_log skipped."""
    from .events import Notice

    return Notice(level="warning", message=f"skipped {skipped} unreadable line{'s' if skipped != 1 else ''} "
                                           f"of {path}", t=t)


# Characters that must not reach a terminal raw: C0/C1 controls (newlines, escape sequences),
# line separators and bidirectional overrides. Names and messages can carry them (a run
# directory called $'x\n\x1b[2J'); views show them escaped.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """`text` with every control character escaped (\\n, \\x1b, \\u202e): one line, no escape sequences."""
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(lambda m: _ESCAPES.get(m.group(), m.group().encode("unicode_escape").decode("ascii")),
                            text)


def _printable_value(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return tuple(printable(v) if isinstance(v, str) else v for v in value)
    return value


def printable_event(event: Event) -> Event:
    """The event with its text fields escaped for display (the same object when nothing needs it)."""
    changes = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, (str, tuple)):
            shown = _printable_value(value)
            if shown is not value and shown != value:
                changes[f.name] = shown
    return dataclasses.replace(event, **changes) if changes else event
