"""The bundled image-caption set: rendered scenes of coloured shapes with captions that describe them.

Each scene holds one shape ("a small red circle on the left") or two ("a large blue square to the
left of a small yellow triangle", "... above ..."), drawn with Pillow on a light background. Scenes
are generated from a seed, so every run sees the same data without shipping image files, and
captions say only what the picture shows (colour, kind, size, position), so retrieval can be learnt
in minutes on a CPU.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

COLOURS = {
    "red": (215, 40, 40),
    "green": (40, 160, 60),
    "blue": (45, 85, 225),
    "yellow": (230, 200, 30),
    "purple": (140, 60, 185),
    "orange": (245, 135, 25),
}
KINDS = ("circle", "square", "triangle", "cross")
SIZES = {"small": 0.11, "large": 0.19}  # radius as a share of the image side
PLACES = {
    "on the left": (0.25, 0.5),
    "on the right": (0.75, 0.5),
    "at the top": (0.5, 0.25),
    "at the bottom": (0.5, 0.75),
    "in the middle": (0.5, 0.5),
}
RELATIONS = ("to the left of", "to the right of", "above", "below")


def _draw(draw: ImageDraw.ImageDraw, kind: str, colour: tuple[int, int, int], cx: float, cy: float, r: float) -> None:
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "square":
        s = r * 0.85
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=colour)
    else:  # cross: two bars
        w = r * 0.35
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)


def _shape(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(list(SIZES)), rng.choice(list(COLOURS)), rng.choice(KINDS)


def render_scene(rng: random.Random, side: int) -> tuple[Image.Image, str]:
    """One random scene of ``side`` x ``side`` pixels and its caption."""
    shade = rng.randint(232, 250)
    img = Image.new("RGB", (side, side), (shade, shade, shade))
    draw = ImageDraw.Draw(img)
    jitter = lambda: rng.uniform(-0.06, 0.06) * side  # noqa: E731

    def put(size, colour, kind, x, y):
        _draw(
            draw,
            kind,
            COLOURS[colour],
            x * side + jitter(),
            y * side + jitter(),
            SIZES[size] * side * rng.uniform(0.9, 1.1),
        )

    first = _shape(rng)
    if rng.random() < 0.3:
        place = rng.choice(list(PLACES))
        put(*first, *PLACES[place])
        return img, f"a {first[0]} {first[1]} {first[2]} {place}"
    second = _shape(rng)
    while second[1:] == first[1:]:  # two shapes of one colour and kind would make the caption ambiguous
        second = _shape(rng)
    relation = rng.choice(RELATIONS)
    # where the first shape sits, and where the second, for each relation
    first_at, second_at = {
        "to the left of": ((0.27, 0.5), (0.73, 0.5)),
        "to the right of": ((0.73, 0.5), (0.27, 0.5)),
        "above": ((0.5, 0.27), (0.5, 0.73)),
        "below": ((0.5, 0.73), (0.5, 0.27)),
    }[relation]
    put(*first, *first_at)
    put(*second, *second_at)
    return img, f"a {first[0]} {first[1]} {first[2]} {relation} a {second[0]} {second[1]} {second[2]}"


def shape_scenes(n: int, seed: int, side: int = 64, unique: bool = False) -> list[tuple[Image.Image, str]]:
    """``n`` scenes from ``seed`` (the same seed, the same scenes).

    Args:
        n: scenes to generate.
        seed: the generator's seed.
        side: pixels per image side.
        unique: no caption twice (held-out sets: every query has exactly one right answer).
    """
    rng = random.Random(seed)
    scenes: list[tuple[Image.Image, str]] = []
    seen: set[str] = set()
    for _ in range(n * 100):
        if len(scenes) == n:
            break
        img, caption = render_scene(rng, side)
        if unique:
            if caption in seen:
                continue
            seen.add(caption)
        scenes.append((img, caption))
    return scenes
