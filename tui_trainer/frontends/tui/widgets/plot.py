"""Line charts in braille, drawn straight into the lines Textual paints.

A `Figure` says what to draw (curves, points, vertical lines, ticks, a title); `render` turns
it into one Strip per row: the y labels and axis, the plot area in braille (2x4 dots a cell),
the x axis and its labels, and a frame when asked. Each cell takes the role (colour) of the
last thing drawn into it, as in plotext, whose charts these replace: plotext built a figure,
wrote it as ANSI text that Rich and Textual then parsed again, ~10 ms of the UI thread per
chart, which the training thread waits for on a small machine. This costs well under 1 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

BRAILLE = 0x2800
# the bit of the dot at (column 0-1, row 0-3 from the top) of a braille cell
DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


@dataclass
class Figure:
    xlim: tuple[float, float] = (0.0, 1.0)
    ylim: tuple[float, float] = (0.0, 1.0)
    xticks: Sequence[tuple[float, str]] = ()
    yticks: Sequence[tuple[float, str]] = ()
    lines: list[tuple[Sequence[float], Sequence[float], str]] = field(default_factory=list)  # xs, ys, role
    points: list[tuple[float, float, str, str]] = field(default_factory=list)  # x, y, character, role
    vlines: list[tuple[float, str]] = field(default_factory=list)  # x, role
    title: str = ""
    box: bool = True  # a frame on all four sides; False: the left and bottom axes only


def plot_rows(height: int, title: bool, box: bool) -> int:
    """Rows of plot area in a chart `height` rows high: less the title, the top frame, the x
    axis and its labels."""
    return height - int(title) - int(box) - 2


class _Canvas:
    """The plot area: a braille dot grid, then whole-cell characters drawn over it."""

    def __init__(self, cols: int, rows: int, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
        self.cols, self.rows = cols, rows
        self.dots = [[0] * cols for _ in range(rows)]
        self.chars: list[list[str | None]] = [[None] * cols for _ in range(rows)]
        self.roles: list[list[str | None]] = [[None] * cols for _ in range(rows)]
        self.x0, x1 = xlim
        self.y0, y1 = ylim
        self.max_x, self.max_y = 2 * cols - 1, 4 * rows - 1
        self.x_scale = self.max_x / (x1 - self.x0) if x1 > self.x0 else 0.0
        self.y_scale = self.max_y / (y1 - self.y0) if y1 > self.y0 else 0.0

    def dot_x(self, x: float) -> int:
        return min(self.max_x, max(0, round((x - self.x0) * self.x_scale)))

    def dot_y(self, y: float) -> int:
        """From the top."""
        return min(self.max_y, max(0, self.max_y - round((y - self.y0) * self.y_scale)))

    def column(self, x: float) -> int:
        return self.dot_x(x) // 2

    def row(self, y: float) -> int:
        return self.dot_y(y) // 4

    def line(self, xs: Sequence[float], ys: Sequence[float], role: str) -> None:
        """Consecutive points joined (Bresenham on the dot grid); a non-finite value breaks
        the line."""
        last = None
        for x, y in zip(xs, ys):
            if not (math.isfinite(x) and math.isfinite(y)):
                last = None
                continue
            point = (self.dot_x(x), self.dot_y(y))
            if last is None:
                self._dot(*point, role)
            else:
                self._segment(last, point, role)
            last = point

    def _segment(self, a: tuple[int, int], b: tuple[int, int], role: str) -> None:
        (x, y), (x1, y1) = a, b
        dx, dy = abs(x1 - x), -abs(y1 - y)
        sx, sy = (1 if x < x1 else -1), (1 if y < y1 else -1)
        err = dx + dy
        while True:
            self._dot(x, y, role)
            if x == x1 and y == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x += sx
            if e2 <= dx:
                err += dx
                y += sy

    def cell(self, col: int, row: int, char: str, role: str) -> None:
        if 0 <= col < self.cols and 0 <= row < self.rows:
            self.chars[row][col] = char
            self.roles[row][col] = role

    def _dot(self, x: int, y: int, role: str) -> None:
        row, col = y >> 2, x >> 1
        self.dots[row][col] |= DOT_BITS[x & 1][y & 3]
        self.chars[row][col] = None  # a curve is drawn over what was in the cell
        self.roles[row][col] = role

    def row_cells(self, row: int) -> list[tuple[str, str | None]]:
        dots, chars, roles = self.dots[row], self.chars[row], self.roles[row]
        return [(chars[c] or (chr(BRAILLE + dots[c]) if dots[c] else " "), roles[c]) for c in range(self.cols)]


def render(figure: Figure, width: int, height: int, styles: Mapping[str, Style], base: Style) -> list[Strip]:
    """The figure as `height` strips of `width` cells; `styles` maps each role to its text
    colour, `base` styles the frame, the labels and the empty cells (and is beneath the roles)."""
    if width <= 0 or height <= 0:
        return []
    label_width = max((len(label) for _, label in figure.yticks), default=0)
    rows = plot_rows(height, bool(figure.title), figure.box)
    cols = width - label_width - 2  # the right frame's column is kept without a frame too
    if rows < 1 or cols < 2:
        return [Strip.blank(width, base)] * height
    canvas = _Canvas(cols, rows, figure.xlim, figure.ylim)
    vline_cols = {}
    for x, role in figure.vlines:  # beneath the curves, which cross them
        col = canvas.column(x)
        vline_cols[col] = role
        for row in range(rows):
            canvas.cell(col, row, "│", role)
    for xs, ys, role in figure.lines:
        canvas.line(xs, ys, role)
    for x, y, char, role in figure.points:
        canvas.cell(canvas.column(x), canvas.row(y), char, role)

    lines: list[list[tuple[str, str | None]]] = []
    if figure.title:
        lines.append([(figure.title.center(width)[:width], None)])
    pad = " " * label_width
    if figure.box:
        top = [("┌", None)] + [("┬", vline_cols[c]) if c in vline_cols else ("─", None) for c in range(cols)]
        lines.append([(pad, None), *top, ("┐", None)])
    labels = {canvas.row(y): label for y, label in figure.yticks}
    for row in range(rows):
        label = labels.get(row)
        line = [(pad if label is None else label.rjust(label_width), None), ("│" if label is None else "┤", None)]
        line += canvas.row_cells(row)
        line.append(("│" if figure.box else " ", None))
        lines.append(line)
    tick_cols = {canvas.column(x): label for x, label in figure.xticks}
    axis = [("└", None)]
    for c in range(cols):
        if c in vline_cols:
            axis.append(("┴", vline_cols[c]))
        else:
            axis.append(("┬" if c in tick_cols else "─", None))
    axis.append(("┘" if figure.box else " ", None))
    lines.append([(pad, None), *axis])
    lines.append([(_tick_labels(tick_cols, label_width + 1, width), None)])
    on_base = {role: base + style for role, style in styles.items()}  # a role's colour on the chart's background
    return [_strip(line, width, on_base, base) for line in lines[:height]]


def _tick_labels(tick_cols: Mapping[int, str], offset: int, width: int) -> str:
    """Each label centred under its tick (kept within the width); one that would touch the one
    before is left out."""
    row = [" "] * width
    free = 0
    for col in sorted(tick_cols):
        label = tick_cols[col]
        start = min(width - len(label), max(0, offset + col - len(label) // 2))
        if start < free:
            continue
        row[start:start + len(label)] = label
        free = start + len(label) + 1
    return "".join(row)


def _strip(cells: list[tuple[str, str | None]], width: int, styles: Mapping[str, Style], base: Style) -> Strip:
    """One row as segments, one per run of cells of the same role."""
    segments: list[Segment] = []
    run: list[str] = []
    run_role: str | None = None
    for text, role in cells:
        if role != run_role and run:
            segments.append(Segment("".join(run), styles[run_role] if run_role else base))
            run = []
        run_role = role
        run.append(text)
    if run:
        segments.append(Segment("".join(run), styles[run_role] if run_role else base))
    return Strip(segments).adjust_cell_length(width, base)
