"""What every panel shares: remember the last state, redraw it when the panel is resized."""

from __future__ import annotations

from rich.text import Text

from ....state import RunState
from .bars import frozen


class StatePanel:
    """Mixin for panels with `show(state)`; a panel's size is known only after layout, so a
    resize redraws the last state at the new size."""

    _state: RunState | None = None
    _key: tuple | None = None

    def remember(self, state: RunState, key: tuple) -> bool:
        """Store the state; True when `key` differs from what is on screen (so redraw)."""
        self._state = state
        if key == self._key:
            return False
        self._key = key
        return True

    def on_resize(self, event) -> None:
        if self._state is not None:
            self._key = None
            self.show(self._state)  # type: ignore[attr-defined]

    _lines: int | None = None
    #: True for panels whose height the stylesheet fixes: their content never needs a layout pass
    fixed_height = False

    def set_content(self, content, lines: int) -> None:
        """Static.update, asking for a layout pass only when the height in lines changed: a
        layout pass repaints every widget on the screen, a plain refresh only this one."""
        if isinstance(content, Text):
            content = frozen(content)
        self.update(content, layout=lines != self._lines and not self.fixed_height)  # type: ignore[attr-defined]
        self._lines = lines


def text_lines(text) -> int:
    return text.plain.count("\n") + 1

