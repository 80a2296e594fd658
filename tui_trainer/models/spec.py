"""What `--model` names, read without importing torch: a built-in model, a torchvision model,
`timm:NAME`, or the user's own factory (`path/to/file.py:factory`, `package.module:factory`).

The CLI checks the name here, so a typo is one line with the closest names before torch loads.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .. import catalog
from ..errors import UserError
from . import torchvision_names

TIMM_PREFIX = "timm:"
TIMM_INSTALL = 'pip install -e ".[timm]"'  # the optional extra in pyproject.toml (or `pip install timm`)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # builtin | torchvision | timm | factory
    name: str  # the model's name; for a factory, the callable's name
    source: str = ""  # a factory's file (absolute) or module; the timm name for timm

    @property
    def is_file(self) -> bool:
        return self.kind == "factory" and self.source.endswith(".py")


def all_names() -> tuple[str, ...]:
    return tuple(catalog.MODELS) + torchvision_names.NAMES


def closest(name: str, names, n: int = 3, cutoff: float = 0.6) -> list[str]:
    return difflib.get_close_matches(name, list(names), n=n, cutoff=cutoff)


def did_you_mean(name: str, names) -> str:
    matches = closest(name, names)
    return f" (did you mean {', '.join(matches)}?)" if matches else ""


def parse(text: str) -> ModelSpec:
    """The model a `--model` value names; raises UserError (one line, the fix) when it names none."""
    if not isinstance(text, str) or not text or "\x00" in text:
        raise UserError(f"--model must name a model, got {text!r:.60}")
    if text in catalog.MODELS:
        return ModelSpec("builtin", text)
    if text in torchvision_names.NAMES:
        return ModelSpec("torchvision", text)
    if text.startswith(TIMM_PREFIX):
        name = text[len(TIMM_PREFIX):]
        if not name or not re.match(r"^[A-Za-z0-9_.\-]+$", name):
            raise UserError(f"--model {text}: write timm:NAME with a timm model name, e.g. timm:resnet18")
        return ModelSpec("timm", name, name)
    if ":" in text:
        return _factory(text)
    lowered = text.lower()
    if lowered in catalog.MODELS or lowered in torchvision_names.NAMES:
        return parse(lowered)
    family = torchvision_names.FAMILIES.get(lowered.rstrip("*"))
    if family:
        raise UserError(f"unknown model '{text}': a family of models; choose one of {', '.join(family)}")
    raise UserError(f"unknown model '{text}'{did_you_mean(text, all_names())}; `tui-trainer list` shows every "
                    "model; timm:NAME and path/to/file.py:factory also work")


def _factory(text: str) -> ModelSpec:
    source, _, attr = text.rpartition(":")
    if not _IDENTIFIER.match(attr):
        raise UserError(f"--model {text}: after the ':' comes the name of a function that builds the model, "
                        f"e.g. path/to/file.py:build_model")
    if source.endswith(".py") or "/" in source or os.sep in source:
        path = Path(source).expanduser()
        if not path.is_file():
            raise UserError(f"--model {text}: no file {source}; give the path of a Python file that defines "
                            f"{attr}(num_classes, in_channels)")
        return ModelSpec("factory", attr, str(path.resolve()))
    if not _DOTTED.match(source):
        raise UserError(f"--model {text}: write path/to/file.py:factory or package.module:factory")
    return ModelSpec("factory", attr, source)


def canonical(text: str) -> str:
    """The spelling config.json keeps: a factory file as an absolute path (a resume may start
    elsewhere), everything else as written."""
    spec = parse(text)
    if spec.kind == "factory":
        return f"{spec.source}:{spec.name}"
    if spec.kind in ("builtin", "torchvision"):
        return spec.name
    return text


def short_name(text: str) -> str:
    """A name for run directories: `resnet18`, `timm-convnext_nano`, `my_net-build`."""
    try:
        spec = parse(text)
    except UserError:
        spec = ModelSpec("builtin", text)
    if spec.kind == "timm":
        label = f"timm-{spec.name}"
    elif spec.kind == "factory":
        label = f"{Path(spec.source).stem if spec.is_file else spec.source.rsplit('.', 1)[-1]}-{spec.name}"
    else:
        label = spec.name
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", label)[:60] or "model"


def timm_installed() -> bool:
    return importlib.util.find_spec("timm") is not None


def check_timm_installed(spec: ModelSpec) -> None:
    if spec.kind == "timm" and not timm_installed():
        raise UserError(f"--model timm:{spec.name} needs timm, which is not installed; install it with "
                        f"`{TIMM_INSTALL}` (or `pip install timm`)")
