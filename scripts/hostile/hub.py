"""Hub ids, Hugging Face folders and sharded checkpoints under hostile edits: huge or mistyped configs,
weight files in odd forms, revisions and refs that lead outside the cache, crafted DCP metadata."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hostile.common import TINY, Outcome, Workspace, digest, refused

COMMIT = "a" * 40


def _exported(ws: Workspace) -> Path:
    """The finished run exported as a Hugging Face folder (made once)."""
    folder = ws.root / "hub-export"
    if not folder.exists():
        proc = ws.lmtrain("export", f"ckpt={ws.root / 'finished'}", f"out={folder}")
        if proc.returncode != 0:
            raise RuntimeError(f"export failed: {proc.stderr[-500:]}")
    return folder


def _edited_folder(ws: Workspace, name: str, **values: Any) -> Path:
    """A copy of the exported folder whose config.json has ``values`` set."""
    folder = ws.root / name
    shutil.copytree(_exported(ws), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **values}))
    return folder


def _generate(ws: Workspace, folder: Path | str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``lmtrain generate ckpt=<folder>`` (120 s at most: a config that builds a huge model would hang)."""
    out = ws.root / "hub-gen"
    args = ["generate", f"ckpt={folder}", "prompt=The farmer", "max_new_tokens=2", f"hydra.run.dir={out}"]
    if env is None:
        return ws.lmtrain(*args, timeout=120)
    full = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "lmtrain", *args], cwd=ws.root, capture_output=True, text=True, timeout=120, env=full
    )


def _nothing_generated(ws: Workspace) -> bool:
    return not (ws.root / "hub-gen" / "generations.jsonl").exists()


def million_layers(ws: Workspace) -> Outcome:
    proc = _generate(ws, _edited_folder(ws, "hub-layers", num_hidden_layers=1_000_000))
    return refused(proc, "num_hidden_layers=1000000, but the weights hold 2 layers", _nothing_generated(ws))


def billion_vocab(ws: Workspace) -> Outcome:
    proc = _generate(ws, _edited_folder(ws, "hub-vocab", vocab_size=1_000_000_000))
    return refused(
        proc,
        "vocab_size=1000000000, but the weights' embeddings.word_embeddings.weight has shape",
        _nothing_generated(ws),
    )


def float_vocab(ws: Workspace) -> Outcome:
    proc = _generate(ws, _edited_folder(ws, "hub-vocab-float", vocab_size=1e9))
    return refused(proc, "vocab_size=1000000000.0 (expected a whole number of at least 1)", _nothing_generated(ws))


def wide_hidden(ws: Workspace) -> Outcome:
    proc = _generate(ws, _edited_folder(ws, "hub-hidden", hidden_size=10_000_000))
    return refused(proc, "hidden_size=10000000, but the weights'", _nothing_generated(ws))


def mistyped_values(ws: Workspace) -> Outcome:
    proc = _generate(
        ws, _edited_folder(ws, "hub-mistyped", hidden_size="32", intermediate_size=-1, num_attention_heads=True)
    )
    said = " ".join(proc.stderr.split())
    return refused(
        proc,
        'hidden_size="32" (expected a whole number of at least 1)',
        _nothing_generated(ws) and "num_attention_heads=true" in said and "intermediate_size=-1" in said,
    )


def bin_holding_a_list(ws: Workspace) -> Outcome:
    import torch

    folder = _edited_folder(ws, "hub-bin-list")
    (folder / "model.safetensors").unlink()
    torch.save([torch.ones(2)], folder / "pytorch_model.bin")
    return refused(_generate(ws, folder), "pytorch_model.bin is not a state dict", _nothing_generated(ws))


def _sharded_folder(ws: Workspace, name: str, index: Any) -> Path:
    folder = _edited_folder(ws, name)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def index_a_list(ws: Workspace) -> Outcome:
    folder = _sharded_folder(ws, "hub-index-list", ["model-00001-of-00001.safetensors"])
    return refused(_generate(ws, folder), "model.safetensors.index.json is not a shard index", _nothing_generated(ws))


def index_outside(ws: Workspace) -> Outcome:
    outside = ws.root / "hub-outside.safetensors"
    shutil.copy(_exported(ws) / "model.safetensors", outside)
    names = {"bert.embeddings.word_embeddings.weight": str(outside)}
    folder = _sharded_folder(ws, "hub-index-outside", {"weight_map": names})
    return refused(
        _generate(ws, folder), f"names the shard '{outside}', which is not a file of", _nothing_generated(ws)
    )


def _hub_cache(ws: Workspace) -> tuple[dict[str, str], Path]:
    """An offline Hugging Face cache holding the export as org/tiny (refs/main), and its repository folder."""
    home = ws.root / "hub-home"
    repo = home / "hub" / "models--org--tiny"
    if not repo.exists():
        shutil.copytree(_exported(ws), repo / "snapshots" / COMMIT)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)
        (repo / "outside").write_text(COMMIT)  # outside refs/: a revision must never reach it
    return {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}, repo


def bad_revision(revision: str) -> Callable[[Workspace], Outcome]:
    """A probe of ``ckpt=org/tiny@<revision>``: refused before the cache is read."""

    def probe(ws: Workspace) -> Outcome:
        env, _ = _hub_cache(ws)
        proc = _generate(ws, f"org/tiny@{revision}", env)
        return refused(proc, f"ckpt=org/tiny@{revision}: {revision!r} is not a revision", _nothing_generated(ws))

    return probe


def ref_naming_a_path(ws: Workspace) -> Outcome:
    env, repo = _hub_cache(ws)
    (repo / "refs" / "odd").write_text("../../../../hub-export")
    proc = _generate(ws, "org/tiny@odd", env)
    return refused(proc, "a file under refs/ of the cache is damaged", _nothing_generated(ws))


def _sharded_run(ws: Workspace, name: str) -> Path:
    """A copy of a finished one-process run with sharded checkpoints (made once)."""
    base = ws.root / "hub-sharded"
    if not base.exists():
        proc = ws.lmtrain("pretrain", *TINY, *ws.data, "trainer.checkpoint_format=sharded", f"hydra.run.dir={base}")
        if proc.returncode != 0:
            raise RuntimeError(f"the sharded run failed: {proc.stderr[-500:]}")
    run = ws.root / name
    shutil.copytree(base, run, symlinks=True)
    return run


def _craft_metadata(run: Path, edit: Callable[[Any], None]) -> None:
    """Rewrite the newest checkpoint's .metadata with ``edit`` applied to it."""
    from lmtrain.files.sharded import read_sharded_metadata

    path = run / "checkpoints" / "last" / "sharded"
    metadata = read_sharded_metadata(path)
    edit(metadata)
    (path / ".metadata").write_bytes(pickle.dumps(metadata))


def _evaluate_crafted(ws: Workspace, name: str, edit: Callable[[Any], None], said: str) -> Outcome:
    run = _sharded_run(ws, name)
    _craft_metadata(run, edit)
    before = digest(run)
    proc = ws.lmtrain("evaluate", f"ckpt={run}", *ws.data, f"hydra.run.dir={ws.root / (name + '-eval')}", timeout=120)
    return refused(proc, said, digest(run) == before)


def metadata_list(ws: Workspace) -> Outcome:
    def edit(metadata: Any) -> None:
        metadata.state_dict_metadata = list(metadata.state_dict_metadata.items())

    return _evaluate_crafted(ws, "hub-dcp-list", edit, "its state_dict_metadata is a list, not a dict")


def metadata_huge_size(ws: Workspace) -> Outcome:
    import dataclasses

    import torch

    def edit(metadata: Any) -> None:
        name = next(key for key in metadata.state_dict_metadata if key.startswith("model."))
        entry = metadata.state_dict_metadata[name]
        metadata.state_dict_metadata[name] = dataclasses.replace(entry, size=torch.Size([10**6, 10**6]))

    return _evaluate_crafted(ws, "hub-dcp-huge", edit, "more than the")


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "config.json with a million layers": million_layers,
    "config.json with vocab_size 1000000000": billion_vocab,
    "config.json with vocab_size 1e9": float_vocab,
    "config.json with hidden_size 1e7": wide_hidden,
    "config.json string, negative, bool sizes": mistyped_values,
    "pytorch_model.bin holding a list": bin_holding_a_list,
    "shard index that is a list": index_a_list,
    "shard index naming a file outside": index_outside,
    "Hub revision @..": bad_revision(".."),
    "Hub revision @.": bad_revision("."),
    "Hub revision @../outside": bad_revision("../outside"),
    "Hub ref file naming a path": ref_naming_a_path,
    "sharded .metadata with a list": metadata_list,
    "sharded .metadata with a huge size": metadata_huge_size,
}
