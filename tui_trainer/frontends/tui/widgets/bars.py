"""Small text renderings shared by the panels: bars and thresholds."""

from __future__ import annotations

import functools

from rich.style import Style
from rich.text import Span, Text

from ....vocab import Status

FULL, EMPTY = "█", "░"


def bar(fraction: float, width: int, style: Style, empty_style: Style) -> Text:
    fraction = min(1.0, max(0.0, fraction))
    filled = int(round(fraction * width))
    text = Text(FULL * filled, style=style)
    text.append(EMPTY * (width - filled), style=empty_style)
    return text


def level_role(value: float | None, warn: float, hot: float) -> str:
    """good below `warn`, warning below `hot`, error above (load, memory, temperature)."""
    if value is None:
        return "muted"
    if value >= hot:
        return "error"
    if value >= warn:
        return "warning"
    return "good"


@functools.lru_cache(maxsize=256)
def _parsed(spec: str) -> Style:
    return Style.parse(spec)


def frozen(text: Text) -> Text:
    """The same Text, changed in place, with every style parsed once into a Style object (so
    compare panels by the state they draw, not by their Text: a frozen Text no longer equals a
    freshly built one).

    Textual re-parses string styles on every render with its own parser, which does not know
    names such as grey70 and falls back through a slow "did you mean" search: a few ms per
    style, on the UI thread, several times a second."""
    if isinstance(text.style, str) and text.style:
        text.style = _parsed(text.style)
    text.spans = [Span(s.start, s.end, _parsed(s.style)) if isinstance(s.style, str) else s for s in text.spans]
    return text
