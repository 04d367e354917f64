"""The pictures lmtrain draws itself (curves, confusion matrices, F1 bars): extreme numbers, text that is
markup or control characters, pictures too large to draw, and an ``out=`` that names a file of the user's."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from hostile.common import Outcome, Workspace, last_line, refused


def _summary_run(root: Path, name: str, summary: dict, events: list[dict]) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "metrics.jsonl").write_text("".join(json.dumps(event) + "\n" for event in events))
    return run


def extreme_metric_values(ws: Workspace) -> Outcome:
    events = [
        {"step": 1, "train/loss": 1e308, "eval/acc": 5e-324},
        {"step": 2, "train/loss": -1e308},
        {"step": 10**15, "train/loss": 3.0, "eval/acc": 1e308},
        {"step": 10**15 + 1, "train/loss": 3.0},
    ]
    run = _summary_run(ws.root, "pictures-extreme", {"command": "pretrain", "best/acc": 1.0}, events)
    out = ws.root / "extreme.png"
    proc = ws.lmtrain("plot", str(run), "metrics=[train/loss,eval/acc]", f"out={out}", "svg=true", timeout=120)
    held = proc.returncode == 0 and "Traceback" not in proc.stderr and out.is_file() and out.stat().st_size > 1000
    return Outcome(proc.returncode, last_line(proc), held)


def markup_and_escapes_in_labels(ws: Workspace) -> Outcome:
    odd = ['<svg onload="alert(1)">', "a & b", "\x1b[2J\x07", "x" * 5000, "Zürich — жук 中文 🙂", ""]
    summary = {
        "command": "finetune",
        "task": "classification",
        "confusion_matrix": {"labels": odd, "matrix": [[i + j for j in range(len(odd))] for i in range(len(odd))]},
        "per_class": {label: {"f1": 0.5} for label in odd},
    }
    run = _summary_run(ws.root, "pictures-<b>&amp;", summary, [{"step": 1, "train/loss": 1.0}])
    outs = [ws.root / "odd-confusion.png", ws.root / "odd-f1.png", ws.root / "odd-curves.png"]
    procs = [
        ws.lmtrain("plot", str(run), "chart=confusion", f"out={outs[0]}", timeout=120),
        ws.lmtrain("plot", str(run), "chart=f1", f"out={outs[1]}", timeout=120),
        ws.lmtrain("plot", str(run), f"out={outs[2]}", "svg=true", timeout=120),
    ]
    svg = outs[2].with_suffix(".svg")
    try:
        title = " ".join(t.text or "" for t in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}text"))
    except (ET.ParseError, OSError) as error:
        return Outcome(procs[2].returncode, f"the SVG does not parse: {error}", False)
    held = (
        all(p.returncode == 0 and "Traceback" not in p.stderr for p in procs)
        and all(out.is_file() for out in outs)
        and "pictures-<b>&amp;" in title  # the run's name, as text, not markup
    )
    return Outcome(max(p.returncode for p in procs), last_line(procs[-1]), held)


def picture_too_large(ws: Workspace) -> Outcome:
    random.seed(0)
    labels = [f"class {i}" for i in range(200)]
    matrix = [[random.randint(0, 9) for _ in labels] for _ in labels]
    summary = {
        "command": "finetune",
        "task": "classification",
        "confusion_matrix": {"labels": labels, "matrix": matrix},
    }
    runs = [
        _summary_run(ws.root / "pictures-many", f"run{i}", summary, [{"step": 1, "train/loss": 1.0}]) for i in range(12)
    ]
    out = ws.root / "huge.png"
    proc = ws.lmtrain("plot", *map(str, runs), "chart=confusion", f"out={out}", timeout=120)
    return refused(proc, "more than the 60 million drawn at most", intact=not out.exists())


def _plain_run(ws: Workspace) -> Path:
    run = ws.root / "pictures-plain"
    if not run.exists():
        events = [{"step": step, "train/loss": 5.0 / step} for step in range(1, 6)]
        _summary_run(ws.root, "pictures-plain", {"command": "pretrain"}, events)
    return run


def out_is_a_readme(ws: Workspace) -> Outcome:
    readme = ws.root / "README.md"
    readme.write_text("# my project\n")
    proc = ws.lmtrain("plot", str(_plain_run(ws)), f"out={readme}", timeout=120)
    return refused(proc, "writes a PNG picture; give a name ending in .png", readme.read_text() == "# my project\n")


def out_is_a_png_named_text_file(ws: Workspace) -> Outcome:
    notes = ws.root / "notes.png"
    notes.write_text("not a picture\n")
    proc = ws.lmtrain("plot", str(_plain_run(ws)), f"out={notes}", timeout=120)
    return refused(proc, "exists and is not a PNG picture", notes.read_text() == "not a picture\n")


def out_is_a_link(ws: Workspace) -> Outcome:
    victim, link = ws.root / "pictures-victim.png", ws.root / "pictures-link.png"
    victim.write_bytes(b"\x89PNG\r\n\x1a\nmine")
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    proc = ws.lmtrain("plot", str(_plain_run(ws)), f"out={link}", timeout=120)
    return refused(proc, "is a symbolic link", victim.read_bytes() == b"\x89PNG\r\n\x1a\nmine")


def out_is_a_folder(ws: Workspace) -> Outcome:
    folder = ws.root / "pictures-folder.png"
    folder.mkdir(exist_ok=True)
    proc = ws.lmtrain("plot", str(_plain_run(ws)), f"out={folder}", timeout=120)
    return refused(proc, "is a folder; give the file to write", folder.is_dir())


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "plot of metrics at the float limits": extreme_metric_values,
    "plot of labels that are markup, escapes or 5,000 characters": markup_and_escapes_in_labels,
    "plot of 12 confusion matrices of 200 classes (too large)": picture_too_large,
    "plot out=README.md": out_is_a_readme,
    "plot out= a text file named .png": out_is_a_png_named_text_file,
    "plot out= a link to a picture of the user's": out_is_a_link,
    "plot out= a folder named .png": out_is_a_folder,
}
