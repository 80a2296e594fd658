"""Colours come from the Textual theme: no widget names a colour of its own, and a theme change
(ctrl+p) restyles every panel, so 16-colour terminals and NO_COLOR apply to all of them alike."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from rich.color import ANSI_COLOR_NAMES
from textual._color_constants import COLOR_NAME_TO_RGB
from textual.geometry import Region

from tui_trainer.frontends import tui
from tui_trainer.frontends.tui.scenes_app import scene_app

TUI = Path(tui.__file__).resolve().parent  # the package under test
MEDIUM = (120, 36)


# ----- no colour names in widget code -----
COLOUR_NAMES = {name.lower() for name in ANSI_COLOR_NAMES} | {name.lower() for name in COLOR_NAME_TO_RGB}
NOT_COLOURS = {"transparent", "auto", "default"}
TOKEN = re.compile(r"(?<![$\w-])(#[0-9a-fA-F]{3,8}\b|[A-Za-z_][A-Za-z0-9_]*)")


def colour_words(text: str) -> list[str]:
    """Colour names and hex colours in `text`, not counting theme variables ($text-muted)."""
    return [t for t in TOKEN.findall(text) if t.startswith("#") or (t.lower() in COLOUR_NAMES and t not in NOT_COLOURS)]


def string_literals(tree: ast.AST):
    """Every string in the code, docstrings left out (prose may say "green")."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def rgb_literals(tree: ast.AST):
    """(r, g, b) tuples given as a colour: color=(150, 150, 150), Color(255, 200, 0)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ("color", "bgcolor") and isinstance(node.value, ast.Tuple):
            yield node.value
        if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Color"
                and node.args and all(isinstance(a, ast.Constant) for a in node.args)):
            yield node


def widget_sources() -> list[Path]:
    return sorted((TUI / "widgets").glob("*.py")) + [TUI / "app.py"]


def test_the_scan_finds_colour_names_and_leaves_theme_variables_alone():
    assert colour_words('"bold cyan"') == ["cyan"] and colour_words("style='grey70'") == ["grey70"]
    assert colour_words("#1b5e20 on #ffffff") == ["#1b5e20", "#ffffff"]
    assert colour_words("color: $text-muted; border: round $primary 60%; background: transparent") == []
    assert len(list(rgb_literals(ast.parse("plt.plot(x, color=(150, 150, 150)); Color(255, 200, 0)")))) == 2


@pytest.mark.parametrize("path", widget_sources(), ids=lambda p: p.name)
def test_no_widget_names_a_colour(path):
    tree = ast.parse(path.read_text())
    found = [(node.lineno, word) for node in string_literals(tree) for word in colour_words(node.value)]
    found += [(node.lineno, ast.unparse(node)) for node in rgb_literals(tree)]
    assert not found, f"{path.name}: colours that do not come from the theme: {found}"


def test_the_stylesheet_names_no_colour():
    css = re.sub(r"/\*.*?\*/", "", (TUI / "app.tcss").read_text(), flags=re.S)
    values = [line.split(":", 1)[1] for line in css.splitlines() if ":" in line and "{" not in line.split(":")[0]]
    assert values and not [w for v in values for w in colour_words(v)]


# ----- a theme change restyles every panel -----
DASHBOARD = ("#header-info", "#header-status", "#progress", "#sparks", "#loss-chart", "#acc-chart", "#lr-text",
             "#lr-chart", "#early", "#system", "#events")
REPORT = ("#report-summary", "#report-cm", "#report-classes", "#report-loss", "#report-acc")
BLACK_AND_WHITE = {"#000000", "#ffffff"}  # text picked for contrast on a shaded cell may stay either


def painted(widget) -> dict[tuple[int, int], tuple[str, str]]:
    """(character, text colour) of every visible character the widget paints, by position."""
    width, height = widget.outer_size
    cells = {}
    for y, strip in enumerate(widget.render_lines(Region(0, 0, width, height))):
        x = 0
        for segment in strip:
            for char in segment.text:
                if char.strip() and segment.style is not None and segment.style.color is not None:
                    cells[(x, y)] = (char, segment.style.color.get_truecolor().hex)
                x += 1
    return cells


def unchanged_colours(before, after) -> list:
    return [(pos, char, colour) for pos, (char, colour) in before.items()
            if after.get(pos) == (char, colour) and colour not in BLACK_AND_WHITE]


@pytest.mark.parametrize("scene, panels", [("running", DASHBOARD), ("early-stopped", REPORT)])
async def test_a_theme_change_restyles_every_panel(scene, panels):
    app = scene_app(scene)
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.pause()
        before = {panel: painted(app.query_one(panel)) for panel in panels}
        app.theme = "nord"  # every colour of it differs from textual-dark's
        await pilot.pause()
        for panel in panels:
            after = painted(app.query_one(panel))
            assert before[panel] and after, panel
            kept = unchanged_colours(before[panel], after)
            assert not kept, f"{panel} kept its colours after the theme changed: {kept[:5]}"


async def test_the_theme_is_changed_with_ctrl_p():
    app = scene_app("running")
    async with app.run_test(size=MEDIUM) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"nord", "enter")
        await pilot.pause()
        assert app.theme == "nord"
        assert app.query_one("#progress").styles.background is not None
        assert "ansi-dark" not in app.available_themes




async def test_no_color_leaves_only_greys_on_every_panel(monkeypatch):
    """NO_COLOR (no-color.org): every panel is painted in greys only, the shaded matrix too
    (Textual turns each colour into a grey of its lightness, so the shades stay apart)."""
    monkeypatch.setenv("NO_COLOR", "1")
    for scene, panels in (("running", DASHBOARD), ("early-stopped", REPORT)):
        app = scene_app(scene)
        async with app.run_test(size=MEDIUM) as pilot:
            await pilot.pause()
            for panel in panels:
                widget = app.query_one(panel)
                width, height = widget.outer_size
                colours = {colour for strip in widget.render_lines(Region(0, 0, width, height)) for s in strip
                           if s.style is not None for colour in (s.style.color, s.style.bgcolor) if colour is not None}
                rgb = [c.get_truecolor() for c in colours]
                assert rgb and all(c.red == c.green == c.blue for c in rgb), (panel, [c.hex for c in rgb][:5])
