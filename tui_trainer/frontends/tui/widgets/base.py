"""What every panel shares: it is a function of the run's state, drawn in the theme's colours.

A panel says what it depends on, `key(state)`, and how to draw that, `draw(state)`. The App's
one refresh loop hands every panel the newest RunState (`show`), inside one batched update; a
panel draws only when its key changed, when it is resized or shown again, or when the theme
changed. A hidden panel (the report behind the dashboard, the LR chart at 80x24) draws once it
is shown.

Colours are roles (`muted`, `good`, `warning`, ...), each a component class whose colour is a
theme variable ($text-muted, $text-success, ...), read with `get_component_rich_style`: never a
colour name. So a theme change restyles every panel, and Textual's 16-colour downgrade and
NO_COLOR apply to all of them alike.
"""

from __future__ import annotations

from typing import Hashable

from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from ....state import RunState
from .bars import frozen

# role: its colour, from the theme
ROLES = {
    "muted": "$text-muted",  # labels, units, secondary facts
    "track": "$foreground 20%",  # the unfilled part of a thin bar
    "empty": "$foreground 38%",  # the unfilled part of a block bar
    "good": "$text-success",
    "warning": "$text-warning",
    "error": "$text-error",
    "primary": "$text-primary",
    "accent": "$text-accent",
}
ROLE_CLASSES = frozenset(f"panel--{role}" for role in ROLES)
ROLE_CSS = "\n".join(f".panel--{role} {{ color: {colour}; }}" for role, colour in ROLES.items())


class Palette:
    """The panel's roles as Rich styles (`palette.good`), in the theme now in use: a text colour
    only (a colour with transparency, such as $text-muted, blended over the panel's background),
    so the panel's own background shows beneath it whatever its state (a focused panel is tinted)."""

    def __init__(self, widget: Widget) -> None:
        for role in ROLES:
            full = widget.get_component_rich_style(f"panel--{role}")
            setattr(self, role, Style(color=full.color, bold=full.bold, italic=full.italic))


_NOTHING_DRAWN = object()


class Panel:
    """Mixin for a Textual widget that shows the run: subclasses implement `key` and `draw`.

    Every subclass gets the role component classes (and their CSS, scoped to it): Textual
    collects DEFAULT_CSS and COMPONENT_CLASSES only along the widget's own base classes."""

    _state: RunState | None = None
    _drawn_key: object = _NOTHING_DRAWN

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.COMPONENT_CLASSES = set(cls.__dict__.get("COMPONENT_CLASSES", ())) | ROLE_CLASSES
        cls.DEFAULT_CSS = cls.__dict__.get("DEFAULT_CSS", "") + "\n" + ROLE_CSS

    # ----- what a panel implements -----
    def key(self, state: RunState) -> Hashable:
        """Everything the drawing depends on (sizes included); equal keys draw the same."""
        raise NotImplementedError

    def draw(self, state: RunState) -> None:
        raise NotImplementedError

    # ----- the loop's side -----
    def show(self, state: RunState) -> None:
        """The newest state: drawn when what this panel depends on changed."""
        self._state = state
        if not self.shown_on_screen:
            return  # drawn when shown
        key = (self.key(state), self.app.theme)  # type: ignore[attr-defined]
        if key == self._drawn_key:
            return
        self._drawn_key = key
        self.draw(state)

    @property
    def shown_on_screen(self) -> bool:
        node = self
        while isinstance(node, Widget):
            if not node.display:
                return False
            node = node.parent
        return True

    _palette: tuple[str, Palette] | None = None

    @property
    def palette(self) -> Palette:
        """Built once per theme (Textual's own cache of component styles is cleared by every
        refresh, and building them walks the widget's ancestors: ~0.3 ms a role)."""
        theme = self.app.theme  # type: ignore[attr-defined]
        if self._palette is None or self._palette[0] != theme:
            self._palette = (theme, Palette(self))  # type: ignore[arg-type]
        return self._palette[1]

    # A panel's size is known only after layout, and a hidden one draws once it is shown.
    def on_resize(self, event) -> None:
        if self._state is not None:
            self.show(self._state)

    def on_show(self, event) -> None:
        if self._state is not None:
            self.show(self._state)


class TextPanel(Panel):
    """A panel drawn as one Text into a Static."""

    _lines: int | None = None
    #: True for panels whose height the stylesheet fixes: their content never needs a layout pass
    fixed_height = False

    def set_content(self, content, lines: int | None = None) -> None:
        """Static.update, asking for a layout pass only when the height in lines changed: a
        layout pass repaints every widget on the screen, a plain refresh only this one."""
        if isinstance(content, Text):
            lines = text_lines(content) if lines is None else lines
            content = frozen(content)
        relayout = lines is None or lines != self._lines  # a table's height is not known here
        self.update(content, layout=relayout and not self.fixed_height)  # type: ignore[attr-defined]
        self._lines = lines


def text_lines(text) -> int:
    return text.plain.count("\n") + 1


class LinePanel(Panel):
    """A panel drawn as one Text that never wraps, rendered by Rich straight into the lines
    Textual paints. For the panels redrawn at every poll (progress, sparklines): a Static turns
    each new Text into its own content form first, about twice the UI time, which the
    training thread shares on a small machine. The host is a plain Widget."""

    _text: Text = Text()
    _line_count = 1
    _strips: tuple[int, list] | None = None  # (width, strips)

    def set_text(self, text: Text) -> None:
        lines = text_lines(text)
        relayout = lines != self._line_count
        self._text, self._line_count, self._strips = text, lines, None
        self.refresh(layout=relayout)  # type: ignore[attr-defined]

    def render(self) -> Text:
        """What is shown (for a reader of the widget; painting goes through render_line)."""
        return self._text

    def get_content_height(self, container, viewport, width: int) -> int:
        return self._line_count

    def render_line(self, y: int) -> Strip:
        width = self.size.width  # type: ignore[attr-defined]
        if self._strips is None or self._strips[0] != width:
            console = self.app.console  # type: ignore[attr-defined]
            options = console.options.update(width=width, height=self._line_count, no_wrap=True)
            lines = console.render_lines(self._text, options, style=self.rich_style, pad=True)  # type: ignore[attr-defined]
            self._strips = (width, [Strip(line, width) for line in lines])
        strips = self._strips[1]
        return strips[y] if y < len(strips) else Strip.blank(width, self.rich_style)  # type: ignore[attr-defined]
