"""Pictures as shapes in pixel coordinates, written as PNG (with Pillow) or SVG (plain text).

A run's pictures (training curves, confusion matrices, F1 bars) are a few hundred lines, boxes,
dots and labels. Drawing them here rather than through a plotting library keeps a finished run's
picture to a few tens of milliseconds and needs nothing beyond Pillow, which lmtrain already reads
images with. A PNG is drawn at twice its size and halved, which smooths the edges of lines and
text. Text is measured with a system font of wide coverage where
there is one (DejaVu Sans, Arial), else with Pillow's own; an SVG names the same fonts, so a viewer
draws text of about the width it was given room for.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

Point = tuple[float, float]
SUPERSAMPLE = 2  # a PNG is drawn this many times larger, then reduced ...
SUPERSAMPLE_UP_TO = 16_000_000  # ... unless it has more pixels than this (memory: 12 bytes a pixel at 2x)
FONT_FAMILY = "'DejaVu Sans', Arial, Helvetica, Aileron, sans-serif"
_VERTICAL = {"t": "a", "m": "m", "b": "d"}  # our anchors' vertical letter as Pillow's (ascender, middle, descender)


@dataclass(frozen=True)
class Stroke:
    """A line through ``points``; ``dash`` is ``(on, off)`` in pixels, or None for a solid line."""

    points: tuple[Point, ...]
    color: str
    width: float = 1.0
    alpha: float = 1.0
    dash: tuple[float, float] | None = None


@dataclass(frozen=True)
class Rect:
    """A box ``(left, top, right, bottom)``, filled and/or outlined."""

    box: tuple[float, float, float, float]
    fill: str | None = None
    outline: str | None = None
    alpha: float = 1.0


@dataclass(frozen=True)
class Dot:
    """A filled circle."""

    center: Point
    radius: float
    color: str


@dataclass(frozen=True)
class Label:
    """Text placed by ``anchor``: horizontal ``l|m|r`` then vertical ``t|m|b`` (``"rm"``: its right end,
    half-way up, at ``at``), turned ``angle`` degrees anticlockwise about ``at``."""

    at: Point
    text: str
    size: float = 11.0
    color: str = "#000000"
    anchor: str = "lt"
    angle: float = 0.0


Shape = Stroke | Rect | Dot | Label


# fonts with wide coverage (accents, Greek, Cyrillic, dashes) found on most systems, tried in turn; Pillow
# searches the system's font folders for each name
SYSTEM_FONTS = ("DejaVuSans.ttf", "Arial.ttf", "arial.ttf", "Helvetica.ttc", "LiberationSans-Regular.ttf")


@functools.lru_cache(maxsize=1)
def _font_file() -> str | None:
    """The first of :data:`SYSTEM_FONTS` installed, or None (Pillow's own font, which has few letters
    beyond ASCII, is used then)."""
    from PIL import ImageFont

    for name in SYSTEM_FONTS:
        try:
            ImageFont.truetype(name, 10)
        except OSError:
            continue
        return name
    return None


@functools.lru_cache(maxsize=16)
def _font(size: float):
    from PIL import ImageFont, features

    if not features.check("freetype2"):
        raise RuntimeError("this Pillow was built without FreeType, which drawing text needs (pip install -U Pillow)")
    found = _font_file()
    return ImageFont.truetype(found, size) if found else ImageFont.load_default(size=size)


def text_width(text: str, size: float) -> float:
    """Width in pixels of ``text`` at font ``size``."""
    return float(_font(size).getlength(text))


def text_height(size: float) -> float:
    """Height in pixels of a line of text at font ``size`` (ascender to descender)."""
    ascent, descent = _font(size).getmetrics()
    return float(ascent + descent)


def _rgba(color: str, alpha: float = 1.0) -> tuple[int, int, int, int]:
    value = color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16), round(255 * alpha)


def dashes(points: tuple[Point, ...], on: float, off: float) -> list[tuple[Point, ...]]:
    """The drawn pieces of a dashed line through ``points``: ``on`` pixels drawn, ``off`` left out, repeated
    (a solid line when ``on`` or ``off`` is not a positive length)."""
    if not (on > 0 and off > 0):
        return [points]
    pieces: list[tuple[Point, ...]] = []
    current: list[Point] = [points[0]]
    drawing, left = True, on
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        length, done = math.hypot(x1 - x0, y1 - y0), 0.0
        while length - done > left:
            done += left
            at = (x0 + (x1 - x0) * done / length, y0 + (y1 - y0) * done / length)
            if drawing:
                pieces.append((*current, at))
            current = [at]
            drawing, left = not drawing, on if not drawing else off
        left -= length - done
        if drawing:
            current.append((x1, y1))
    if drawing and len(current) > 1:
        pieces.append(tuple(current))
    return pieces


@dataclass
class Picture:
    """A white ``width`` x ``height`` picture and the shapes drawn on it, in drawing order."""

    width: int
    height: int
    shapes: list[Shape] = field(default_factory=list)

    def add(self, shape: Shape) -> None:
        """Draw ``shape`` over what is there."""
        self.shapes.append(shape)

    def png(self) -> bytes:
        """The picture as a PNG file's bytes."""
        from PIL import Image, ImageDraw

        s = SUPERSAMPLE if self.width * self.height <= SUPERSAMPLE_UP_TO else 1
        image = Image.new("RGB", (self.width * s, self.height * s), "white")
        draw = ImageDraw.Draw(image, "RGBA")
        for shape in self.shapes:
            if isinstance(shape, Stroke):
                pieces = dashes(shape.points, *shape.dash) if shape.dash else [shape.points]
                for piece in pieces:
                    if len(piece) > 1:
                        draw.line(
                            [(x * s, y * s) for x, y in piece],
                            fill=_rgba(shape.color, shape.alpha),
                            width=max(1, round(shape.width * s)),
                            joint="curve",
                        )
            elif isinstance(shape, Rect):
                left, top, right, bottom = (v * s for v in shape.box)
                draw.rectangle(
                    (left, top, max(left, right - 1), max(top, bottom - 1)),
                    fill=_rgba(shape.fill, shape.alpha) if shape.fill else None,
                    outline=_rgba(shape.outline) if shape.outline else None,
                    width=s,
                )
            elif isinstance(shape, Dot):
                (x, y), r = shape.center, shape.radius * s
                draw.ellipse((x * s - r, y * s - r, x * s + r, y * s + r), fill=_rgba(shape.color))
            else:
                _draw_label(image, draw, shape, s)
        buffer = io.BytesIO()
        image.reduce(s).save(buffer, format="PNG")
        return buffer.getvalue()

    def svg(self) -> str:
        """The picture as an SVG document."""
        lines = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
            f'viewBox="0 0 {self.width} {self.height}">',
            f'<rect width="{self.width}" height="{self.height}" fill="#ffffff"/>',
        ]
        lines += [_svg_element(shape) for shape in self.shapes]
        lines.append("</svg>")
        return "\n".join(line for line in lines if line) + "\n"


def _draw_label(image, draw, label: Label, s: int) -> None:
    from PIL import Image, ImageDraw

    if not label.text:
        return
    font = _font(label.size * s)
    anchor = label.anchor[0] + _VERTICAL[label.anchor[1]]
    x, y = label.at[0] * s, label.at[1] * s
    if not label.angle:
        draw.text((x, y), label.text, font=font, fill=_rgba(label.color), anchor=anchor)
        return
    # turned text: drawn on a transparent image just large enough, turned there, laid over the picture
    # where its anchor point lands on ``at``
    left, top, right, bottom = font.getbbox(label.text, anchor=anchor)
    tile = Image.new("RGBA", (math.ceil(right - left) + 2, math.ceil(bottom - top) + 2), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((1 - left, 1 - top), label.text, font=font, fill=_rgba(label.color), anchor=anchor)
    dx, dy = 1 - left - tile.width / 2, 1 - top - tile.height / 2  # the anchor, from the tile's middle
    turned = tile.rotate(label.angle, resample=Image.Resampling.BICUBIC, expand=True)
    angle = math.radians(label.angle)  # anticlockwise on screen, where y grows downwards
    ax = turned.width / 2 + dx * math.cos(angle) + dy * math.sin(angle)
    ay = turned.height / 2 - dx * math.sin(angle) + dy * math.cos(angle)
    image.paste(turned, (round(x - ax), round(y - ay)), turned)


def _svg_element(shape: Shape) -> str:
    if isinstance(shape, Stroke):
        if len(shape.points) < 2:
            return ""
        points = " ".join(f"{x:.2f},{y:.2f}" for x, y in shape.points)
        dash = f' stroke-dasharray="{shape.dash[0]:g},{shape.dash[1]:g}"' if shape.dash else ""
        return (
            f'<polyline points="{points}" fill="none" stroke="{shape.color}" stroke-width="{shape.width:g}" '
            f'stroke-opacity="{shape.alpha:g}" stroke-linejoin="round"{dash}/>'
        )
    if isinstance(shape, Rect):
        left, top, right, bottom = shape.box
        fill = f'fill="{shape.fill}" fill-opacity="{shape.alpha:g}"' if shape.fill else 'fill="none"'
        outline = f' stroke="{shape.outline}"' if shape.outline else ""
        size = f'width="{right - left:.2f}" height="{bottom - top:.2f}"'
        return f'<rect x="{left:.2f}" y="{top:.2f}" {size} {fill}{outline}/>'
    if isinstance(shape, Dot):
        (x, y), r = shape.center, shape.radius
        return f'<circle cx="{x:.2f}" cy="{y:.2f}" r="{r:g}" fill="{shape.color}"/>'
    if not shape.text:
        return ""
    ascent, descent = _font(shape.size).getmetrics()
    x, y = shape.at
    baseline = {"t": ascent, "m": (ascent - descent) / 2, "b": -descent}[shape.anchor[1]]
    turn = f' transform="rotate({-shape.angle:g} {x:.2f} {y:.2f})"' if shape.angle else ""
    start = {"l": "start", "m": "middle", "r": "end"}[shape.anchor[0]]
    return (
        f'<text x="{x:.2f}" y="{y + baseline:.2f}" font-size="{shape.size:g}" font-family={quoteattr(FONT_FAMILY)} '
        f'fill="{shape.color}" text-anchor="{start}"{turn}>{escape(shape.text)}</text>'
    )
