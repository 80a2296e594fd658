"""The torture test, short: SIGKILL a headless run five times - twice during a checkpoint
write (once a periodic one, after best_model.pth), once at a random moment of start-up, once of
training, once during the final report - resume it each time, and check that it always
resumes and ends exactly like the same run done in one go: weights, per-epoch metrics, the
whole history, and every periodic checkpoint.

The long version, with counts: python benchmarks/torture.py
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from _reliability import cli_main, one_thread

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "torture.py"


def _torture_module():
    spec = importlib.util.spec_from_file_location("torture_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_sigkill_at_random_moments_then_resume_always_finishes_the_same_run(tmp_path):
    torture = _torture_module()
    epochs, kills = 6, 5
    reference = tmp_path / "reference"
    with one_thread():
        code, out, err = cli_main(torture.run_args(reference, epochs))
    assert code == 0, out + err

    lines: list[str] = []
    counts = torture.torture(tmp_path / "tortured", kills, epochs, seed=1, reference=reference, log=lines.append)

    assert counts.failures == 0, "\n".join(counts.problems + lines)
    assert counts.kills == kills, lines
    assert counts.kills_during_save >= 1, lines  # at least one of the aimed kills hit a write
    assert counts.kills_during_periodic >= 1, lines  # one left an epoch with best_model.pth but no periodic file
    # every kill left a run to resume, but one that landed after the report was written (complete)
    assert counts.resumes + counts.kills_after_end >= kills and counts.kills_after_end <= 1
    report = json.loads((tmp_path / "tortured" / "run" / "report.json").read_text())
    assert report["status"] == "finished" and report["epochs_completed"] == epochs
