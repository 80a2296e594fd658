"""The confusion matrix's cells stay readable: text and background have a contrast ratio of at
least 4.5:1 (WCAG AA) in truecolor and after Rich's downgrade to 256 and to 16 colours (tmux,
TERM=screen), the colour systems the console meets."""

from __future__ import annotations

import pytest
from rich._palettes import EIGHT_BIT_PALETTE, STANDARD_PALETTE
from rich.color import ColorSystem
from rich.style import Style

from tui_trainer.frontends.tui.scenes_app import scene_app
from tui_trainer.frontends.tui.widgets.report import _shade

SYSTEMS = {"truecolor": None, "256": ColorSystem.EIGHT_BIT, "16": ColorSystem.STANDARD}


def luminance(rgb) -> float:
    def channel(v: int) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a, b) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def rendered(color, system: str):
    """The RGB a terminal of that colour system shows for `color` (Rich's own downgrade; the
    16 colours as Rich's standard palette defines them)."""
    if SYSTEMS[system] is not None:
        color = color.downgrade(SYSTEMS[system])
    if color.number is not None and system != "truecolor":
        palette = EIGHT_BIT_PALETTE if system == "256" else STANDARD_PALETTE
        return tuple(palette[color.number])
    triplet = color.get_truecolor()
    return (triplet.red, triplet.green, triplet.blue)


def cell_styles():
    """Every style a non-zero cell can get: each share of its row, on and off the diagonal."""
    for value in range(1, 101):
        for diagonal in (True, False):
            yield value, diagonal, Style.parse(_shade(value, 100, diagonal))


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_every_heat_cell_has_a_contrast_of_at_least_4_5(system):
    for value, diagonal, style in cell_styles():
        assert style.color is not None and style.bgcolor is not None, (value, diagonal)
        ratio = contrast(rendered(style.color, system), rendered(style.bgcolor, system))
        assert ratio >= 4.5, (system, value, diagonal, str(style), round(ratio, 2))


async def test_zero_cells_are_readable_on_the_report_background():
    app = scene_app("early-stopped")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        _, background = app.query_one("#report-cm").background_colors
        rgb = background.rgb
        zero = Style.parse(_shade(0, 100, False))
        for system in SYSTEMS:
            ratio = contrast(rendered(zero.color, system), rgb)
            assert ratio >= 4.5, (system, round(ratio, 2))
