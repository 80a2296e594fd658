"""What a person would read on the console's screen: its text, as painted (overlays included)."""

from __future__ import annotations

import io

from rich.console import Console


def screen_lines(app) -> list[str]:
    """Every row of the screen as plain text (what Textual would put in a screenshot)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      record=True, legacy_windows=False, safe_box=False)
    # export_screenshot's own way to the painted screen, as text instead of SVG
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False).splitlines()[:height]


def screen_text(app) -> str:
    return "\n".join(screen_lines(app))


def region_text(app, widget) -> str:
    """The text painted inside `widget`'s region of the screen."""
    region = widget.region
    lines = screen_lines(app)[region.y:region.y + region.height]
    return "\n".join(line[region.x:region.x + region.width] for line in lines)
