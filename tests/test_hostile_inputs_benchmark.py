"""benchmarks/hostile_inputs.py in its quickest form (the planted-link cases), so it cannot rot:
it runs real processes, prints its table and exits 0 only when every case held."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_hostile_inputs_prints_its_table_and_every_link_case_holds():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hostile_inputs.py"), "-k", "symlink"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and not line.startswith(("| input", "| ---"))]
    assert len(rows) == 8 and all(row.endswith("| ok |") for row in rows), proc.stdout
    assert "cases 8, failures 0" in proc.stdout
