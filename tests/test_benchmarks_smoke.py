"""Each benchmark runs in its quickest mode and prints its table, so none of them can rot.

These check that the scripts work end to end (the same code paths as a real measurement, at
tiny sizes); they assert nothing about speed, which only a real run on a known machine can.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def run(*cmd: str, timeout: float = 240) -> subprocess.CompletedProcess:
    # One intra-op thread: on a machine busy with other work (the rest of the suite, say), a
    # team of OpenMP threads waits on whichever member is descheduled, and these runs crawl.
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def table_rows(output: str) -> list[list[str]]:
    """The rows of the first plain-text table in the output (below its dashed rule)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("--"))
    rows = []
    for line in lines[start + 1:]:
        if not line.strip() or line.startswith(("(", "ratio", "imports", "first", "epoch s", "data path")):
            break
        rows.append(line.split())
    return rows


def test_engine_overhead_quick_reports_a_ratio_per_workload():
    proc = run(sys.executable, str(BENCH / "engine_overhead.py"), "--quick", "--clip", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = table_rows(proc.stdout)
    assert [r[0] for r in rows] == ["tiny", "cnn", "job", "job-same-step"]
    for row in rows:
        ratio = float(row[6])
        assert ratio > 0  # a measured number, whatever the machine's noise made of it


def test_data_path_quick_compares_our_loader_with_torchvision():
    proc = run(sys.executable, str(BENCH / "data_path.py"), "--quick", "--images", "256")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ours: TensorLoader" in proc.stdout and "torchvision: CIFAR10 + PIL transforms" in proc.stdout
    assert "ratio ours/torchvision:" in proc.stdout


def test_startup_quick_times_help_and_finds_no_heavy_import():
    proc = run(sys.executable, str(BENCH / "startup.py"), "--quick", "--trials", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "python -m tui_trainer --help" in proc.stdout
    assert "imports during --help: none of torch" in proc.stdout
    assert "first TUI frame:" in proc.stdout


def test_gpu_check_quick_runs_every_kind_of_row_on_the_cpu():
    # data-only, torchvision + plain, ours + engine fp32, engine bf16 channels_last, both compiled
    # loops, the engine compiled for reduce-overhead, the captured step (plain and engine)
    rows_asked = [1, 2, 3, 5, 9, 13, 14, 20, 21, 22]
    proc = run("bash", str(BENCH / "gpu_check.sh"), "--device", "cpu", "--quick", "--only",
               ",".join(map(str, rows_asked)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = table_rows(proc.stdout)
    assert [int(r[0]) for r in rows] == rows_asked
    assert not any("skipped" in " ".join(r) or "failed" in " ".join(r) for r in rows)
    captured = {int(r[0]): r for r in rows}[22]
    assert captured[1:7] == ["engine", "ours", "fp32", "NCHW", "no", "captured"] and float(captured[11]) > 0
    assert "seed recipe projected (100 epochs of 50,000 images, batch 16), captured (row 22):" in proc.stdout


def test_gpu_check_without_a_gpu_fails_in_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run("bash", str(BENCH / "gpu_check.sh"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a CUDA GPU" in lines[0] and "Traceback" not in proc.stderr


def test_attach_quick_times_opening_a_long_run():
    proc = run(sys.executable, str(BENCH / "attach.py"), "open", "--quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "1,000 epochs of history" in proc.stdout
    assert float(table_rows(proc.stdout)[0][0]) > 0
