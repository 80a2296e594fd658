"""The confusion matrix's cells stay readable in every theme the console offers: text and
background have a contrast ratio of at least 4.5:1 (WCAG AA) in truecolor and after Rich's
downgrade to 256 and to 16 colours (tmux, TERM=screen), the colour systems the console meets.
The cells' colours come from the theme, so the guarantee is checked theme by theme, as drawn."""

from __future__ import annotations

from rich._palettes import EIGHT_BIT_PALETTE, STANDARD_PALETTE
from rich.color import ColorSystem
from textual.geometry import Region

from tui_trainer.frontends.tui.scenes_app import scene_app
from tui_trainer.frontends.tui.widgets.report import ConfusionMatrix

SYSTEMS = {"truecolor": None, "256": ColorSystem.EIGHT_BIT, "16": ColorSystem.STANDARD}


# The arithmetic is written out here rather than imported from the code under test.
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


def painted_colours(widget) -> set[tuple[str, str]]:
    """(text, background) of every cell the widget paints."""
    width, height = widget.size
    return {(str(s.style.color), str(s.style.bgcolor)) for strip in widget.render_lines(Region(0, 0, width, height))
            for s in strip if s.style is not None and s.text.strip()}


async def test_every_offered_theme_keeps_the_matrix_readable():
    app = scene_app("early-stopped")
    offered = []
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        themes = sorted(app.available_themes)
        assert "textual-dark" in themes and len(themes) >= 15
        for theme in themes:
            app.theme = theme
            await pilot.pause()
            heat = app.query_one(ConfusionMatrix).heat
            cells = [(f"diagonal {i}", s) for i, s in enumerate(heat.diagonal)]
            cells += [(f"confusion {i}", s) for i, s in enumerate(heat.confusion)]
            for name, style in cells:
                assert style.color is not None and style.bgcolor is not None, (theme, name)
                for system in SYSTEMS:
                    ratio = contrast(rendered(style.color, system), rendered(style.bgcolor, system))
                    assert ratio >= 4.5, (theme, name, system, str(style), round(ratio, 2))
            _, _, background, _ = app.query_one(ConfusionMatrix).colors
            for system in SYSTEMS:
                ratio = contrast(rendered(heat.zero.color, system), rendered(background.rich_color, system))
                assert ratio >= 4.5, (theme, "zero", system, round(ratio, 2))
            # and the matrix painted now is in those colours (redrawn for the theme)
            painted = painted_colours(app.query_one(ConfusionMatrix))
            used = [s for s in heat.diagonal + heat.confusion if (str(s.color), str(s.bgcolor)) in painted]
            assert len(used) >= 5, (theme, painted)
            offered.append(theme)
    assert offered == themes


async def test_a_larger_share_stands_further_from_the_background_in_every_theme():
    """Heat is the distance from the panel's background: each shade of a scale differs more
    from it than the one before (lighter on a dark theme, darker on a light one)."""
    app = scene_app("early-stopped")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        seen = set()
        for theme in sorted(app.available_themes):
            app.theme = theme
            await pilot.pause()
            matrix = app.query_one(ConfusionMatrix)
            _, _, background, _ = matrix.colors
            heat = matrix.heat
            for scale in (heat.diagonal, heat.confusion[1:]):
                distances = [contrast(rendered(s.bgcolor, "truecolor"), rendered(background.rich_color, "truecolor"))
                             for s in scale]
                assert distances == sorted(distances) and len(set(distances)) == len(distances), (theme, distances)
            seen.add(tuple(str(s) for s in heat.diagonal + heat.confusion))
        assert len(seen) >= 10  # the shades follow the theme
