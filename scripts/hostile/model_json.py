"""A run's model.json altered by hand: sizes the weight file cannot hold are refused before anything is built."""

from __future__ import annotations

import json
from collections.abc import Callable

from hostile.common import Outcome, Workspace, refused


def _altered(ws: Workspace, name: str, **spec) -> str:
    run = ws.fresh_run(name)
    path = run / "checkpoints" / "last" / "model.json"
    meta = json.loads(path.read_text())
    meta["spec"].update(spec)
    path.write_text(json.dumps(meta))
    return str(run)


def million_layers(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("evaluate", f"ckpt={_altered(ws, 'json-layers', n_layers=1_000_000)}", *ws.data, timeout=120)
    return refused(proc, "spec.n_layers=1000000 cannot describe the model")


def forty_layers(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("generate", f"ckpt={_altered(ws, 'json-deeper', n_layers=40)}", "prompt=The", timeout=120)
    return refused(proc, "more weight tensors than the")


def size_as_text(ws: Workspace) -> Outcome:
    proc = ws.lmtrain(
        "export", f"ckpt={_altered(ws, 'json-text', d_model='32')}", f"out={ws.root / 'json-out'}", timeout=120
    )
    return refused(proc, "spec.d_model='32' is not a valid int", not (ws.root / "json-out").exists())


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "n_layers=1e6 in model.json (evaluate)": million_layers,
    "n_layers=40 in model.json (generate)": forty_layers,
    "d_model as text in model.json (export)": size_as_text,
}
