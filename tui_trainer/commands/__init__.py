"""Commands beyond run/resume/diagnose/list/show, one module each.

A command module defines `register(sub)`, which adds its parser to the CLI's subparsers and sets
`func` on it with `parser.set_defaults(func=main)`, and `main(args) -> int` (the exit code). It must
not import torch at module level: `tui-trainer --help` imports every command module.

To add a command, add its module's name to COMMANDS (the order is the order in `--help`).
"""

from __future__ import annotations

import importlib

COMMANDS: tuple[str, ...] = ("attach", "ls", "ctl", "compare", "eval", "lr_find")


def register_all(sub) -> None:
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
