"""Readable colour pairs, as terminals show them.

The contrast ratio (WCAG 2) of text on its background, taken at its worst over the colour
systems the console meets: truecolor, and Rich's downgrade to 256 and to 16 colours (tmux,
TERM=screen), with the 16 colours as Rich's standard palette defines them. `readable` picks
black or white text for a background, nudging the background when neither reaches the ratio
in every system.
"""

from __future__ import annotations

from rich._palettes import EIGHT_BIT_PALETTE, STANDARD_PALETTE
from rich.color import Color as RichColor
from rich.color import ColorSystem
from textual.color import BLACK, WHITE, Color

MIN_CONTRAST = 4.5  # WCAG AA for normal text
SYSTEMS = {"truecolor": None, "256": ColorSystem.EIGHT_BIT, "16": ColorSystem.STANDARD}


def shown(color: RichColor, system: str) -> tuple[int, int, int]:
    """The RGB a terminal of that colour system shows for `color`."""
    downgrade = SYSTEMS[system]
    if downgrade is not None:
        color = color.downgrade(downgrade)
    if color.number is not None and system != "truecolor":
        palette = EIGHT_BIT_PALETTE if system == "256" else STANDARD_PALETTE
        return tuple(palette[color.number])
    triplet = color.get_truecolor()
    return (triplet.red, triplet.green, triplet.blue)


def luminance(rgb: tuple[int, int, int]) -> float:
    def channel(v: int) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def worst_contrast(text: RichColor, background: RichColor) -> float:
    """The lowest contrast of `text` on `background` over the colour systems."""
    return min(contrast(shown(text, s), shown(background, s)) for s in SYSTEMS)


def readable(background: Color, steps: int = 20) -> tuple[Color, Color]:
    """(text, background): black or white text, whichever reads better, on `background`, made
    darker (under white text) or lighter (under black) until the pair reaches MIN_CONTRAST in
    every colour system."""
    candidate = background
    for step in range(steps + 1):
        pairs = sorted(((worst_contrast(text.rich_color, candidate.rich_color), i, text)
                        for i, text in enumerate((WHITE, BLACK))), reverse=True)
        best, _, text = pairs[0]
        if best >= MIN_CONTRAST:
            return text, candidate
        amount = 0.03 * (step + 1)
        candidate = background.darken(amount) if text is WHITE else background.lighten(amount)
    return text, candidate
