"""What each entry point imports, checked in a fresh interpreter: the engine never pulls in
Textual or Rich, and the command line parses and rejects bad input without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = r"""
import json, sys

def loaded(*names):
    return {n: n in sys.modules for n in names}

result = {}
import tui_trainer, tui_trainer.cli
result["cli"] = loaded("torch", "textual", "rich", "torchvision", "sklearn")
code = tui_trainer.cli.main(["run", "no-such-dataset"])
result["bad_input"] = {"code": code, **loaded("torch", "textual", "rich")}
import tui_trainer.engine, tui_trainer.runner, tui_trainer.data, tui_trainer.models
import tui_trainer.frontends.headless
from tui_trainer import Trainer, EarlyStopping, create_scheduler, evaluate_classification
result["engine"] = loaded("torch", "textual", "rich")
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def probe():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_importing_the_cli_does_not_import_torch(probe):
    result, _ = probe
    assert result["cli"] == {"torch": False, "textual": False, "rich": False, "torchvision": False, "sklearn": False}


def test_bad_input_is_rejected_before_torch_loads(probe):
    result, stderr = probe
    assert result["bad_input"] == {"code": 2, "torch": False, "textual": False, "rich": False}
    assert "unknown dataset 'no-such-dataset'" in stderr and "Traceback" not in stderr


def test_the_engine_and_the_headless_printer_import_neither_textual_nor_rich(probe):
    result, _ = probe
    assert result["engine"] == {"torch": True, "textual": False, "rich": False}
