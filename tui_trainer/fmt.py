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


def rate(per_sec: float | None, unit: str = " samples/s") -> str:
    """8,545 samples/s; 123k samples/s from 100,000 up; `unit="/s"` for a compact 8,545/s."""
    if not per_sec:
        return "--"
    if per_sec >= 100_000:
        return f"{per_sec / 1000:,.0f}k{unit}"
    return f"{per_sec:,.0f}{unit}"


def lr(value: float | None) -> str:
    """Every view writes a learning rate the same way: 1.00e-03."""
    if value is None:
        return "--"
    return f"{value:.2e}" if math.isfinite(value) else str(value)


ENGINEERING_BELOW, ENGINEERING_FROM = 1e-3, 1e4


def metric(value: float | None, width: int = 7) -> str:
    """A loss or other unbounded metric in at most about `width` characters.

    Fixed point with up to 4 decimals between 0.001 and 10,000 (0.6123, 1234.57); outside that,
    engineering notation with 3 significant digits (15.0e-6, 4.84e18): a diverging loss never
    prints 20 digits, and a tiny one never reads 0.0000."""
    if value is None:
        return "--"
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if value == 0 or ENGINEERING_BELOW <= magnitude < ENGINEERING_FROM:
        whole = len(f"{int(magnitude)}") + (1 if value < 0 else 0)
        decimals = max(1, min(4, width - whole - 1))
        text = f"{value:.{decimals}f}"
        if float(text) != 0 or value == 0:
            return text
    return engineering(value)


def engineering(value: float) -> str:
    """3 significant digits, the exponent a multiple of 3: 15.0e-6, 4.84e18, 250e3."""
    digits, exponent = f"{abs(value):.2e}".split("e")  # rounds first: 99,999 is 1.00e+05
    exponent = int(exponent)
    shift = exponent % 3  # 0, 1 or 2 places moved from the exponent into the mantissa
    whole = digits.replace(".", "")
    mantissa = whole[: 1 + shift] + ("." + whole[1 + shift:] if shift < 2 else "")
    sign = "-" if value < 0 else ""
    return f"{sign}{mantissa}e{exponent - shift}"


def plural(n: int, word: str) -> str:
    """1 epoch, 2 epochs."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
