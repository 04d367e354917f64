"""Image-caption annotations: ALBEF's JSON, ``image<TAB>caption`` lines or CSV (Flickr8k's captions.txt),
and caption cleaning as ALBEF's ``pre_caption`` does it.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lmtrain.errors import UserError


@dataclass(frozen=True)
class CaptionPair:
    """One caption of one image; ``image_id`` is shared by every caption of the same image."""

    image: str  # the image's path (or the key of an in-memory image)
    caption: str
    image_id: int


def pre_caption(caption: str, max_words: int) -> str:
    """ALBEF's caption cleaning: lowercase, drop punctuation, hyphens and slashes to spaces,
    collapse whitespace, keep the first ``max_words`` words."""
    caption = re.sub(r"([,.'!?\"()*#:;~])", "", caption.lower()).replace("-", " ").replace("/", " ")
    caption = caption.replace("<person>", "person")
    caption = re.sub(r"\s{2,}", " ", caption).strip()
    return " ".join(caption.split(" ")[:max_words])


_LEFT_RIGHT = re.compile(r"\b(left|right)\b")


def swap_left_right(caption: str) -> str:
    """The caption of the mirrored image: every ``left`` becomes ``right`` and back."""
    return _LEFT_RIGHT.sub(lambda m: "right" if m.group(1) == "left" else "left", caption)


def _read_json(path: Path) -> list[tuple[str, str, str]]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            'expected a list of {"image": "<path>", "caption": "<text>" or ["<text>", ...]}.'
        ) from None
    if not isinstance(entries, list):
        raise UserError(
            f'{path}: expected a JSON list of {{"image": ..., "caption": ...}} entries, '
            f"found a {type(entries).__name__}."
        )
    rows: list[tuple[str, str, str]] = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or "image" not in entry or "caption" not in entry:
            raise UserError(
                f'{path}: entry {n} has no "image" and "caption" keys ({str(entry)[:80]}); '
                'every entry needs both, e.g. {"image": "photos/1.jpg", "caption": "a dog"}.'
            )
        captions = entry["caption"] if isinstance(entry["caption"], list) else [entry["caption"]]
        rows.extend((str(entry["image"]), str(c), f"entry {n}") for c in captions)
    return rows


def _read_lines(path: Path, text: str) -> list[tuple[str, str, str]]:
    lines = text.splitlines()
    header = lines[0].strip().lower() if lines else ""
    if header.replace(" ", "") == "image,caption" or (path.suffix == ".csv"):
        reader = csv.DictReader(lines)
        if not reader.fieldnames or not {"image", "caption"} <= {f.strip() for f in reader.fieldnames}:
            raise UserError(f"{path}: a CSV captions file needs the header `image,caption`.")
        return [(row["image"].strip(), row["caption"], f"line {reader.line_num}") for row in reader if row.get("image")]
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip() or (n == 1 and header.split("\t") == ["image", "caption"]):
            continue
        if "\t" not in line:
            raise UserError(
                f"{path}, line {n}: expected `image<TAB>caption`, found {line[:80]!r}. Use tab-separated "
                "lines, a CSV file with the header `image,caption`, or ALBEF's JSON list."
            )
        image, caption = line.split("\t", 1)
        rows.append((image.strip(), caption, f"line {n}"))
    return rows


def _inside(root: Path, image: str) -> bool:
    """Whether ``root / image`` stays inside ``root`` once ``..`` and absolute paths are applied.

    The test is on the path as written (no symlinks followed): a link the user placed inside the
    root is their choice; a caption line that climbs out of it is not.
    """
    base = os.path.abspath(root)
    target = os.path.abspath(os.path.join(base, image))
    return os.path.commonpath([base, target]) == base


def read_captions(
    path: str | Path, image_root: str | Path | None, key: str = "data.train_files", allow_outside_root: bool = False
) -> list[CaptionPair]:
    """The image-caption pairs of an annotation file, image paths joined to ``image_root``.

    Formats: ``.json`` (ALBEF: a list of ``{"image": path, "caption": str or [str]}``), CSV with the
    header ``image,caption`` (Flickr8k's captions.txt), or ``image<TAB>caption`` lines.

    Args:
        path: the annotation file.
        image_root: folder the image paths are relative to (None = the annotation file's folder).
        key: the config key that named ``path`` (for error messages).
        allow_outside_root: accept image paths that lead outside the root (``..``, absolute paths).
    Raises:
        UserError: a missing, empty or malformed file, or an image path outside the root (line named).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"{key}: {path} does not exist; give an annotation file (ALBEF JSON, CSV with "
            "`image,caption`, or `image<TAB>caption` lines)."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save the captions file as UTF-8.") from None
    rows = _read_json(path) if path.suffix == ".json" else _read_lines(path, text)
    if not rows:
        raise UserError(f"{path} holds no image-caption pairs.")
    root = Path(image_root).expanduser() if image_root else path.parent
    if not allow_outside_root:
        for image, _, where in rows:
            if not _inside(root, image):
                raise UserError(
                    f"{path}, {where}: image path {image!r} leads outside data.image_root ({root}"
                    f"{'' if image_root else ': unset, so the captions file folder'}); give image paths "
                    "inside the image root, or set data.allow_outside_root=true if you trust the captions file."
                )
    ids: dict[str, int] = {}
    return [CaptionPair(str(root / image), caption, ids.setdefault(image, len(ids))) for image, caption, _ in rows]
