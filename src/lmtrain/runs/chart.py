"""Charts of a run's numbers as data: panels of lines, of grouped bars and of a heat map, in a grid.

What each panel shows, its legend and its ticks are plain values here, so what a picture says can be
checked without looking at pixels; :func:`lmtrain.runs.chart_drawing.draw_chart` places the panels and
draws them. Axes
get "nice" ticks (1, 2, 2.5 or 5 times a power of ten), whole numbers only on a count axis, decades on
a logarithmic one. Colours are matplotlib's default cycle, which users of other tools know.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MAX_TICKS = 7


def palette(i: int) -> str:
    """The ``i``-th colour of the cycle (it repeats after ten)."""
    return PALETTE[i % len(PALETTE)]


def nice_ticks(low: float, high: float, most: int = MAX_TICKS, integer: bool = False) -> list[float]:
    """At most ``most`` evenly spaced round values covering ``[low, high]`` (whole numbers if ``integer``)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = high / max(most - 1, 1) - low / max(most - 1, 1)  # divided first: high - low may overflow
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    first = math.ceil(low / step - 1e-9) * step
    ticks, k = [], 0
    while first + k * step <= high + step * 1e-9 and k <= 2 * most:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def log_ticks(low: float, high: float, most: int = MAX_TICKS) -> list[float]:
    """Powers of ten within ``[low, high]`` (both > 0; every few when there are more than ``most``), with 2
    and 5 times them when fewer than three powers show."""
    first, last = max(math.floor(math.log10(low)), -323), min(math.ceil(math.log10(high)), 308)
    every = max(1, math.ceil((last - first + 1) / most))
    powers = [10.0**d for d in range(first, last + 1, every) if low <= 10.0**d <= high]
    if len(powers) >= 3 or every > 1:
        return powers
    return [f * 10.0**d for d in range(first, last + 1) for f in (1, 2, 5) if low <= f * 10.0**d <= high]


def tick_text(value: float, ticks: Sequence[float]) -> str:
    """``value`` with the decimals the spacing of ``ticks`` needs (0.25 apart: two), ``3e+06`` style when huge."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-4:
        return f"{value:.3g}"
    spacing = min((abs(b - a) for a, b in zip(ticks, ticks[1:]) if b != a), default=abs(value))
    decimals = next(
        (d for d in range(7) if abs(spacing * 10**d - round(spacing * 10**d)) < 1e-6 * max(1.0, spacing * 10**d)), 6
    )
    return f"{value:.{decimals}f}"


@dataclass
class Curve:
    """A line of ``(x, y)`` points (not finite values break it); ``markers`` puts a dot on each point."""

    xs: Sequence[float]
    ys: Sequence[float]
    color: str
    width: float = 1.5
    alpha: float = 1.0
    markers: bool = False


@dataclass
class Level:
    """A dashed horizontal line at ``value`` (a baseline)."""

    value: float
    color: str
    label: str


@dataclass
class Key:
    """One legend entry: a short line of the colour, width and dash of what it names."""

    label: str
    color: str
    width: float = 1.8
    alpha: float = 1.0
    dashed: bool = False


@dataclass
class LinePanel:
    """Lines against a common x axis; ``log_y``: a logarithmic y axis (all values > 0)."""

    title: str
    x_label: str
    curves: list[Curve] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    integer_x: bool = False
    log_y: bool = False

    def legend(self) -> list[str]:
        """The legend's labels, in order (the levels' after the keys')."""
        return [key.label for key in self.keys] + [level.label for level in self.levels]

    def x_range(self) -> tuple[float, float]:
        """The x values shown, with no margin (0 to 1 for a panel without points)."""
        xs = [x for c in self.curves for x, y in zip(c.xs, c.ys) if math.isfinite(x) and math.isfinite(y)]
        return _spread(min(xs, default=0.0), max(xs, default=1.0), whole=self.integer_x)

    def y_range(self) -> tuple[float, float]:
        """The y values shown, with a margin of 5% each side (ratios on a log axis)."""
        ys = [y for c in self.curves for y in c.ys if math.isfinite(y) and (y > 0 or not self.log_y)]
        ys += [v.value for v in self.levels if math.isfinite(v.value) and (v.value > 0 or not self.log_y)]
        low, high = min(ys, default=1.0 if self.log_y else 0.0), max(ys, default=10.0 if self.log_y else 1.0)
        if self.log_y:
            pad = 10.0 ** min(0.05 * (math.log10(high) - math.log10(low)), 10.0) if high > low else 2.0
            return (low / pad) or low, min(high * pad, sys.float_info.max)
        low, high = _spread(low, high, whole=False)
        pad = high * 0.05 - low * 0.05  # not (high - low) * 0.05, which may overflow
        return max(low - pad, -sys.float_info.max), min(high + pad, sys.float_info.max)

    def x_ticks(self) -> list[float]:
        """The x axis's tick values."""
        return nice_ticks(*self.x_range(), integer=self.integer_x)

    def y_ticks(self) -> list[float]:
        """The y axis's tick values."""
        low, high = self.y_range()
        return log_ticks(low, high) if self.log_y else nice_ticks(low, high)


def _spread(low: float, high: float, whole: bool) -> tuple[float, float]:
    """``(low, high)``, widened around a single value so that an axis has a length."""
    if high > low:
        return low, high
    half = 1.0 if whole else max(abs(low) * 0.05, 0.5 if low == 0 else 0.0)
    return low - half, high + half


@dataclass
class BarPanel:
    """Grouped bars: for each category one bar per group (``(label, colour, values)``), on a 0-1 axis."""

    categories: list[str]
    groups: list[tuple[str, str, list[float]]]
    y_label: str
    title: str = ""
    keys: list[Key] = field(default_factory=list)

    def legend(self) -> list[str]:
        """The legend's labels, in order."""
        return [key.label for key in self.keys]


@dataclass
class HeatPanel:
    """A square heat map: each cell's colour is ``shares[row][col]`` (0-1), its text the count, when shown."""

    names: list[str]
    counts: list[list[float]]
    shares: list[list[float]]
    title: str
    x_label: str = "predicted"
    y_label: str = "gold"
    numbers: bool = True


Panel = LinePanel | BarPanel | HeatPanel


@dataclass
class Chart:
    """Panels laid out ``columns`` to a row, each ``panel_size`` pixels, under an optional title."""

    panels: list[Panel]
    columns: int
    panel_size: tuple[int, int]
    title: str = ""

    @property
    def rows(self) -> int:
        """Rows of panels (one when there is none)."""
        return math.ceil(len(self.panels) / self.columns) if self.panels else 1

    @property
    def size(self) -> tuple[int, int]:
        """Width and height of the picture in pixels."""
        return self.columns * self.panel_size[0], self.rows * self.panel_size[1]
