"""Helpers shared by the benchmark scripts: interleaved trials, medians, a plain table, and
a description of the machine the figures came from.

Every benchmark measures its two sides in one process (or one run), alternating A and B
trial by trial, so that a slow moment of the machine hits both sides alike; it reports
medians, never the best run.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from typing import Any, Callable, Sequence


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def interleave(trials: int, sides: dict[str, Callable[[], Any]]) -> dict[str, list[Any]]:
    """Run each side once per trial, alternating which goes first (first to last, then last
    to first); returns each side's list of results (whatever the callables measure)."""
    names = list(sides)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for trial in range(trials):
        order = names if trial % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(sides[name]())
    return results


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """a[i] / b[i] for each trial: the ratio within one trial, where both sides ran back to back."""
    return [x / y for x, y in zip(a, b) if y > 0]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_line(with_torch: bool = True) -> str:
    """One line naming the machine: CPU model, usable cores, Python and (optionally) torch."""
    parts = [f"CPU: {cpu_model()}", f"{usable_cores()} cores", f"Python {platform.python_version()}"]
    if with_torch:
        import torch

        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads)")
        if torch.cuda.is_available():
            parts.append(f"GPU: {torch.cuda.get_device_name(0)}")
    return ", ".join(parts)


def load_average() -> str:
    """The 1-minute load average: other processes on the machine are part of the noise."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "n/a"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Aligned plain-text table: text columns left-aligned, numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def is_number(text: str) -> bool:
        try:
            float(text.rstrip("x%").replace(",", ""))
            return True
        except ValueError:
            return False

    lines = []
    for n, row in enumerate(cells):
        out = []
        for i, cell in enumerate(row):
            out.append(cell.rjust(widths[i]) if n and is_number(cell) else cell.ljust(widths[i]))
        lines.append("  ".join(out).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    if ok:
        return "meets target"
    if higher_is_better:
        return f"MISSES target by {100 * (target - value) / target:.1f}%"
    return f"MISSES target by {100 * (value - target) / target:.1f}%"


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env() -> dict[str, str]:
    """Environment for a benchmark's child processes: the repository importable even when
    the package is not installed, output unbuffered."""
    env = dict(os.environ)
    root = repo_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ensure_repo_importable() -> None:
    root = repo_root()
    if root not in sys.path:
        sys.path.insert(0, root)
