"""Export: out= a user's folder, a run, a checkpoint, a file or a link; a previous export; a bad metrics line;
a file-size limit; names that would be Markdown or HTML in the model card."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

from hostile.common import Outcome, Workspace, digest, last_line, refused

MARKER = "lmtrain-export.json"


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.is_symlink()}


def users_folder(ws: Workspace) -> Outcome:
    out = ws.root / "mine"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    (out / "config.json").write_text("{}")
    proc = ws.lmtrain("export", f"ckpt={ws.root / 'finished'}", f"out={out}")
    return refused(
        proc,
        "holds files that lmtrain export did not write",
        _contents(out) == {"README.md": b"my notes", "config.json": b"{}"},
    )


def into_a_checkpoint(ws: Workspace) -> Outcome:
    run = ws.fresh_run("export-step")
    before = digest(run)
    proc = ws.lmtrain("export", f"ckpt={run}", f"out={run / 'checkpoints' / 'step-2'}")
    still_loads = ws.lmtrain("generate", f"ckpt={run / 'checkpoints' / 'step-2'}", "prompt=the [MASK] barn")
    return refused(proc, "is inside the run folder", digest(run) == before and still_loads.returncode == 0)


def into_the_run(ws: Workspace) -> Outcome:
    run = ws.fresh_run("export-run")
    before = digest(run)
    proc = ws.lmtrain("export", f"ckpt={run}", "format=safetensors", f"out={run}")
    return refused(proc, "is a run folder", digest(run) == before and not (run / "config.json").exists())


def out_a_file(ws: Workspace) -> Outcome:
    out = ws.root / "model.bin"
    out.write_text("mine")
    proc = ws.lmtrain("export", f"ckpt={ws.root / 'finished'}", f"out={out}")
    return refused(proc, "is a file", out.read_text() == "mine")


def out_a_symlink(ws: Workspace) -> Outcome:
    target = ws.root / "link-target"
    target.mkdir()
    (ws.root / "link").symlink_to(target)
    proc = ws.lmtrain("export", f"ckpt={ws.root / 'finished'}", f"out={ws.root / 'link'}")
    return refused(proc, "is a symbolic link", not any(target.iterdir()))


def previous_export_replaced(ws: Workspace) -> Outcome:
    out = ws.root / "exported"
    first = ws.lmtrain("export", f"ckpt={ws.root / 'finished'}", f"out={out}")
    again = ws.lmtrain("export", f"ckpt={ws.root / 'finished'}", f"out={out}")
    marker = json.loads((out / MARKER).read_text()) if (out / MARKER).is_file() else {}
    leftovers = [p.name for p in ws.root.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    held = first.returncode == again.returncode == 0 and marker.get("written_by") == "lmtrain export" and not leftovers
    return Outcome(again.returncode, f"marker files {marker.get('files')}, leftovers {leftovers}", held)


def symlink_in_previous_export(ws: Workspace) -> Outcome:
    out = ws.root / "exported-link"
    ws.lmtrain("export", f"ckpt={ws.root / 'finished'}", f"out={out}")
    precious = ws.root / "precious.json"
    precious.write_text("keep")
    (out / "config.json").unlink()
    (out / "config.json").symlink_to(precious)
    proc = ws.lmtrain("export", f"ckpt={ws.root / 'finished'}", f"out={out}")
    return refused(proc, "which is a symbolic link", precious.read_text() == "keep")


def malformed_metrics_line(ws: Workspace) -> Outcome:
    run = ws.fresh_run("export-metrics")
    with (run / "metrics.jsonl").open("a") as metrics:
        metrics.write('{"step": "x"}\n5\n')
    out = ws.root / "exported-metrics"
    proc = ws.lmtrain("export", f"ckpt={run}", f"out={out}")
    held = proc.returncode == 0 and (out / "README.md").is_file() and "Traceback" not in proc.stderr
    return Outcome(proc.returncode, "exported with its card" if held else last_line(proc), held)


def file_size_limit(ws: Workspace) -> Outcome:
    def limit_file_size() -> None:  # writes past 100 kB fail with EFBIG (the weights are about 280 kB)
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    out = ws.root / "exported-big"
    proc = ws.lmtrain("export", f"ckpt={ws.root / 'finished'}", f"out={out}", preexec_fn=limit_file_size)
    leftovers = [p.name for p in ws.root.iterdir() if p.name.startswith(".tmp-exported-big")]
    return refused(proc, "file-size limit", not os.path.lexists(out) and not leftovers)


def card_injection(ws: Workspace) -> Outcome:
    run = ws.fresh_run("export-card")
    overrides = run / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text() + '- "data.name=x\\n## Injected <img src=x onerror=alert(1)>"\n')
    out = ws.root / "## Injected <img onerror=alert(1)>"
    proc = ws.lmtrain("export", f"ckpt={run}", f"out='{out}'")
    card = (out / "README.md").read_text() if (out / "README.md").is_file() else ""
    outside_code = card.split("```")[0] + card.rsplit("```", 1)[-1]
    injected = [line for line in outside_code.splitlines() if line.startswith("## Injected") or "<img" in line]
    held = proc.returncode == 0 and bool(card) and not injected
    return Outcome(proc.returncode, f"raw lines outside code: {injected}" if card else last_line(proc), held)


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "out= a folder of the user's": users_folder,
    "out= a checkpoint of a run": into_a_checkpoint,
    "out= the run folder (safetensors)": into_the_run,
    "out= a file": out_a_file,
    "out= a symbolic link": out_a_symlink,
    "a previous export is replaced whole": previous_export_replaced,
    "a symlink in a previous export": symlink_in_previous_export,
    "a malformed metrics.jsonl line": malformed_metrics_line,
    "ulimit -f during export": file_size_limit,
    "Markdown and HTML in the card": card_injection,
}
