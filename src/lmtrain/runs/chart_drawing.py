"""Drawing a :class:`~lmtrain.runs.chart.Chart`: each panel's frame, grid, ticks, lines, bars or cells, and
legend, placed so that labels of any length have room (long titles are cut short with an ellipsis)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from lmtrain.errors import UserError
from lmtrain.runs.chart import BarPanel, Chart, HeatPanel, Key, LinePanel, nice_ticks, tick_text
from lmtrain.runs.drawing import Dot, Label, Picture, Rect, Stroke, text_height, text_width

INK, GRID, FRAME = "#262626", "#b0b0b0", "#404040"
TITLE_SIZE, LABEL_SIZE, TICK_SIZE, LEGEND_SIZE = 12.0, 11.0, 10.0, 9.5
DASH = (5.0, 3.0)  # on, off pixels of a baseline's line
MAX_NAME_WIDTH = 240.0  # pixels: a longer class or category name is cut short with an ellipsis
MAX_PIXELS = 60_000_000  # a bigger picture is refused (about 180 MB of memory to draw)


def draw_chart(chart: Chart) -> Picture:
    """``chart`` drawn: its title, then each panel in its place of the grid.

    Raises:
        UserError: the picture would have more than :data:`MAX_PIXELS` pixels.
    """
    width, height = chart.size
    if width * height > MAX_PIXELS:
        raise UserError(
            f"the picture would be {width} x {height} pixels ({len(chart.panels)} panels of "
            f"{chart.panel_size[0]} x {chart.panel_size[1]}), more than the {MAX_PIXELS // 1_000_000} million "
            "drawn at most; draw fewer runs, metrics or classes at a time."
        )
    picture = Picture(width, height)
    top = 0.0
    if chart.title:
        picture.add(Label((width / 2, 6), _fit(chart.title, TITLE_SIZE + 1, width - 20), TITLE_SIZE + 1, INK, "mt"))
        top = text_height(TITLE_SIZE + 1) + 6
    panel_w, panel_h = chart.panel_size
    shrink = top / chart.rows  # the title's room comes out of every row alike
    for i, panel in enumerate(chart.panels):
        row, column = divmod(i, chart.columns)
        box = (
            column * panel_w,
            top + row * (panel_h - shrink),
            (column + 1) * panel_w,
            top + (row + 1) * (panel_h - shrink),
        )
        if isinstance(panel, LinePanel):
            _draw_lines(picture, box, panel)
        elif isinstance(panel, BarPanel):
            _draw_bars(picture, box, panel)
        else:
            _draw_heat(picture, box, panel)
    return picture


def _fit(text: str, size: float, room: float) -> str:
    """``text``, cut short with an ellipsis where it is wider than ``room`` pixels."""
    if text_width(text, size) <= room:
        return text
    low, high = 0, len(text)  # the longest prefix that fits with the ellipsis: a binary search, as text may be long
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if text_width(text[:middle] + "…", size) <= room else (low, middle - 1)
    return text[:low] + "…"


class _Axes:
    """Maps data to pixels inside ``plot`` (left, top, right, bottom) for the given ranges."""

    def __init__(
        self,
        plot: tuple[float, float, float, float],
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        log_y: bool = False,
    ):
        self.plot, self.log_y = plot, log_y
        self.x0, self.x1 = x_range
        low, high = y_range
        self.y0, self.y1 = (math.log10(low), math.log10(high)) if log_y else (low, high)

    def x(self, value: float) -> float:
        left, _, right, _ = self.plot
        return left + (value / 2 - self.x0 / 2) / (self.x1 / 2 - self.x0 / 2) * (right - left)  # halves: no overflow

    def y(self, value: float) -> float:
        _, top, _, bottom = self.plot
        value = math.log10(value) if self.log_y else value
        return bottom - (value / 2 - self.y0 / 2) / (self.y1 / 2 - self.y0 / 2) * (bottom - top)


def _title_and_plot_box(picture: Picture, box, title: str, y_texts: list[str], x_label: str, y_label: str = ""):
    """Draw the panel's title; return the plot area left once the title, tick labels and axis labels have room."""
    left, top, right, bottom = box
    if title:
        picture.add(
            Label(((left + right) / 2, top + 8), _fit(title, TITLE_SIZE, right - left - 16), TITLE_SIZE, INK, "mt")
        )
    y_room = max((text_width(t, TICK_SIZE) for t in y_texts), default=0.0) + 8
    y_label_room = text_height(LABEL_SIZE) + 6 if y_label else 0.0
    plot = (
        left + 14 + y_label_room + y_room,
        top + 16 + (text_height(TITLE_SIZE) if title else 0.0),
        right - 16,
        bottom - 12 - text_height(TICK_SIZE) - (text_height(LABEL_SIZE) + 4 if x_label else 0.0),
    )
    if x_label:
        picture.add(Label(((plot[0] + plot[2]) / 2, bottom - 8), x_label, LABEL_SIZE, INK, "mb"))
    if y_label:
        picture.add(Label((left + 10, (plot[1] + plot[3]) / 2), y_label, LABEL_SIZE, INK, "mt", angle=90))
    return plot


def _draw_lines(picture: Picture, box, panel: LinePanel) -> None:
    x_ticks, y_ticks = panel.x_ticks(), panel.y_ticks()
    y_texts = [tick_text(v, y_ticks) for v in y_ticks]
    plot = _title_and_plot_box(picture, box, panel.title, y_texts, panel.x_label)
    left, top, right, bottom = plot
    low, high = panel.x_range()
    margin = high * 0.03 - low * 0.03  # points at the ends stay clear of the frame (not (high - low): overflow)
    axes = _Axes(plot, (low - margin, high + margin), panel.y_range(), panel.log_y)
    for value, text in zip(x_ticks, (tick_text(v, x_ticks) for v in x_ticks)):
        x = axes.x(value)
        picture.add(Stroke(((x, top), (x, bottom)), GRID, 0.8, 0.5))
        picture.add(Stroke(((x, bottom), (x, bottom + 4)), FRAME, 0.8))
        picture.add(Label((x, bottom + 6), text, TICK_SIZE, INK, "mt"))
    for value, text in zip(y_ticks, y_texts):
        y = axes.y(value)
        picture.add(Stroke(((left, y), (right, y)), GRID, 0.8, 0.5))
        picture.add(Stroke(((left - 4, y), (left, y)), FRAME, 0.8))
        picture.add(Label((left - 6, y), text, TICK_SIZE, INK, "rm"))
    drawn: list[tuple[float, float]] = []
    for curve in panel.curves:
        piece: list[tuple[float, float]] = []
        for x, y in [*zip(curve.xs, curve.ys), (math.nan, math.nan)]:
            if math.isfinite(x) and math.isfinite(y) and (y > 0 or not panel.log_y):
                piece.append((axes.x(x), axes.y(y)))
                continue
            if len(piece) > 1:
                picture.add(Stroke(tuple(piece), curve.color, curve.width, curve.alpha))
            if curve.markers or len(piece) == 1:
                for point in piece:
                    picture.add(Dot(point, 2.5, curve.color))
            drawn += _along(piece)
            piece = []
    for level in panel.levels:
        y = axes.y(level.value)
        picture.add(Stroke(((left, y), (right, y)), level.color, 1.2, 0.8, dash=DASH))
    picture.add(Rect(plot, outline=FRAME))
    keys = [*panel.keys, *(Key(level.label, level.color, 1.2, 0.8, dashed=True) for level in panel.levels)]
    _draw_legend(picture, plot, keys, drawn)


def _along(points: list[tuple[float, float]], every: float = 4.0) -> list[tuple[float, float]]:
    """``points`` and points every ``every`` pixels between them: where a line runs, not only its corners."""
    dense = points[:1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        n = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / every))
        dense += [(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(1, n + 1)]
    return dense


def _draw_legend(picture: Picture, plot, keys: list[Key], points: list[tuple[float, float]]) -> None:
    """The legend in the corner of ``plot`` that covers the fewest of ``points`` (the upper right on a tie):
    the places a line runs through, so that the legend hides as little of the lines as it can."""
    if not keys:
        return
    left, top, right, bottom = plot
    line_h = text_height(LEGEND_SIZE) + 2
    width = min(max(text_width(k.label, LEGEND_SIZE) for k in keys) + 40, right - left - 8)
    height = line_h * len(keys) + 8
    corners = [
        (right - 6 - width, top + 6),
        (left + 6, top + 6),
        (right - 6 - width, bottom - 6 - height),
        (left + 6, bottom - 6 - height),
    ]

    def covered(corner: tuple[float, float]) -> int:
        x, y = corner
        return sum(x <= px <= x + width and y <= py <= y + height for px, py in points)

    x, y = min(corners, key=covered)
    picture.add(Rect((x, y, x + width, y + height), fill="#ffffff", outline="#cccccc", alpha=0.85))
    for i, key in enumerate(keys):
        middle = y + 4 + line_h * (i + 0.5)
        picture.add(
            Stroke(((x + 6, middle), (x + 28, middle)), key.color, key.width, key.alpha, DASH if key.dashed else None)
        )
        picture.add(Label((x + 34, middle), _fit(key.label, LEGEND_SIZE, width - 40), LEGEND_SIZE, INK, "lm"))


def _slanted(names: Sequence[str], slot: float) -> bool:
    """Whether names ``slot`` pixels apart are written at 45 degrees, as they would touch written level."""
    return max((text_width(n, TICK_SIZE) for n in names), default=0.0) > slot - 6


def _name_room(names: Sequence[str], slanted: bool) -> float:
    """Height the x axis's names take: their width turned 45 degrees, or one line."""
    widest = max((text_width(n, TICK_SIZE) for n in names), default=0.0)
    return widest * 0.71 + text_height(TICK_SIZE) if slanted else text_height(TICK_SIZE)


def _x_names(picture: Picture, names: Sequence[str], xs: Sequence[float], y: float, slanted: bool) -> None:
    for name, x in zip(names, xs):
        picture.add(Label((x, y), name, TICK_SIZE, INK, "rt" if slanted else "mt", 45 if slanted else 0))


def _draw_bars(picture: Picture, box, panel: BarPanel) -> None:
    categories = [_fit(name, TICK_SIZE, MAX_NAME_WIDTH) for name in panel.categories]
    ticks = nice_ticks(0.0, 1.0, 6)
    texts = [tick_text(v, ticks) for v in ticks]
    left, top, right, bottom = box
    slanted = _slanted(categories, (right - left - 80) / max(len(categories), 1))
    room = _name_room(categories, slanted) - text_height(TICK_SIZE)
    plot = _title_and_plot_box(picture, (left, top, right, bottom - room), panel.title, texts, "", panel.y_label)
    axes = _Axes(plot, (-0.5, len(categories) - 0.5), (0.0, 1.0))
    for value, text in zip(ticks, texts):
        y = axes.y(value)
        picture.add(Stroke(((plot[0], y), (plot[2], y)), GRID, 0.8, 0.5))
        picture.add(Label((plot[0] - 6, y), text, TICK_SIZE, INK, "rm"))
    share = 0.8 / max(len(panel.groups), 1)
    for g, (_, color, values) in enumerate(panel.groups):
        offset = (g - (len(panel.groups) - 1) / 2) * share
        for i, value in enumerate(values):
            if math.isfinite(value):
                value = min(max(value, 0.0), 1.0)
                picture.add(
                    Rect(
                        (axes.x(i + offset - share / 2), axes.y(value), axes.x(i + offset + share / 2), axes.y(0.0)),
                        fill=color,
                    )
                )
    picture.add(Rect(plot, outline=FRAME))
    _x_names(picture, categories, [axes.x(i) for i in range(len(categories))], plot[3] + 6, slanted)
    _draw_legend(picture, plot, panel.keys, [])


def _blue(share: float) -> str:
    """matplotlib's "Blues" colour map, roughly: white at 0, dark blue at 1."""
    stops = ((0.0, (247, 251, 255)), (0.5, (107, 174, 214)), (1.0, (8, 48, 107)))
    share = min(max(share, 0.0), 1.0)
    (a, ca), (b, cb) = (stops[0], stops[1]) if share <= 0.5 else (stops[1], stops[2])
    t = (share - a) / (b - a)
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb))


def _draw_heat(picture: Picture, box, panel: HeatPanel) -> None:
    left, top, right, bottom = box
    names = [_fit(name, TICK_SIZE, MAX_NAME_WIDTH) for name in panel.names]
    n = len(names)
    names_w = max((text_width(name, TICK_SIZE) for name in names), default=0.0)
    room_left = names_w + text_height(LABEL_SIZE) + 24
    title_room = text_height(TITLE_SIZE) + 16

    def square(slanted: bool) -> float:
        room_below = _name_room(names, slanted) + text_height(LABEL_SIZE) + 20
        return max(min(right - left - room_left - 12, bottom - top - title_room - room_below), 1.0)

    slanted = _slanted(names, square(False) / max(n, 1))
    side = square(slanted)
    x0 = left + room_left + (right - left - room_left - 12 - side) / 2
    y0 = top + title_room
    cell = side / max(n, 1)
    picture.add(
        Label((x0 + side / 2, top + 8), _fit(panel.title, TITLE_SIZE, right - left - 16), TITLE_SIZE, INK, "mt")
    )
    for row in range(n):
        for col in range(n):
            share = panel.shares[row][col]
            picture.add(
                Rect(
                    (x0 + col * cell, y0 + row * cell, x0 + (col + 1) * cell, y0 + (row + 1) * cell), fill=_blue(share)
                )
            )
            if panel.numbers:
                color = "#ffffff" if share > 0.5 else "#000000"
                text = f"{panel.counts[row][col]:.0f}"
                picture.add(Label((x0 + (col + 0.5) * cell, y0 + (row + 0.5) * cell), text, TICK_SIZE, color, "mm"))
    picture.add(Rect((x0, y0, x0 + side, y0 + side), outline=FRAME))
    for i, name in enumerate(names):
        picture.add(Label((x0 - 6, y0 + (i + 0.5) * cell), name, TICK_SIZE, INK, "rm"))
    _x_names(picture, names, [x0 + (i + 0.5) * cell for i in range(n)], y0 + side + 6, slanted)
    picture.add(
        Label((x0 + side / 2, y0 + side + _name_room(names, slanted) + 10), panel.x_label, LABEL_SIZE, INK, "mt")
    )
    picture.add(Label((x0 - names_w - 14, y0 + side / 2), panel.y_label, LABEL_SIZE, INK, "mb", angle=90))
