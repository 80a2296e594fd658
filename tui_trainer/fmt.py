"""Number formatting shared by every view (plain strings; no Rich, no Textual)."""

from __future__ import annotations

import math


def duration(seconds: float | None) -> str:
    """3.2s, 4m05s, 2h03m, 1d04h."""
    if seconds is None or not math.isfinite(seconds):
        return "--"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def size(n: float | None) -> str:
    """Bytes as 512 B, 3.4 MB, 1.2 GB (powers of 1024)."""
    if n is None:
        return "--"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def count(n: int | float | None) -> str:
    """12,345 / 1.2M for large numbers."""
    if n is None:
        return "--"
    if abs(n) >= 10_000_000:
        return f"{n / 1e6:.1f}M"
    return f"{int(n):,}"


def rate(samples_per_sec: float | None) -> str:
    if not samples_per_sec:
        return "--"
    if samples_per_sec >= 100_000:
        return f"{samples_per_sec / 1000:.0f}k/s"
    return f"{samples_per_sec:,.0f}/s"


def lr(value: float | None) -> str:
    return "--" if value is None else f"{value:.2e}"


def plural(n: int, word: str) -> str:
    """1 epoch, 2 epochs."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
