"""Tasks own their keys: a moved key typed the old way, a key the run's task does not read, a task key of another
task, and a head class named in a fine-tuned run's model.json that is not a head."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from hostile.common import TINY, Outcome, Workspace, digest, refused

TAGGER = [
    "task=ner",
    "debug=tiny",
    "init=scratch",
    "trainer.progress=false",
    "trainer.max_steps=2",
    "trainer.eval_every=0",
    "trainer.save_every=0",
    "trainer.log_every=1",
]


def tagger_run(ws: Workspace) -> Path:
    """A fine-tuned NER run of two steps (made once, shared by the probes that predict)."""
    run = ws.root / "tasks-ner"
    if not (run / "summary.json").is_file():
        proc = ws.lmtrain("finetune", *TAGGER, f"hydra.run.dir={run}")
        if proc.returncode != 0:
            raise RuntimeError(f"the NER run failed: {proc.stderr[-500:]}")
    return run


def _predict(ws: Workspace, run: Path, *keys: str):
    line = ws.root / "tasks-line.txt"
    line.write_text("Alice visited Paris .\n")
    return ws.lmtrain("predict", f"ckpt={run}", f"input={line}", *keys, f"hydra.run.dir={ws.root / 'tasks-predict'}")


def old_task_encoder(ws: Workspace) -> Outcome:
    out = ws.root / "tasks-old-encoder"
    proc = ws.lmtrain("finetune", *TAGGER, "finetune.task_encoder=bilstm", f"hydra.run.dir={out}")
    return refused(proc, "moved to task.encoder", not out.exists())


def old_task_lstm_dim(ws: Workspace) -> Outcome:
    out = ws.root / "tasks-old-lstm"
    proc = ws.lmtrain("finetune", *TAGGER, "finetune.task_lstm_dim=64", f"hydra.run.dir={out}")
    return refused(proc, "moved to task.lstm_dim", not out.exists())


def tagger_key_for_classification(ws: Workspace) -> Outcome:
    proc = ws.lmtrain(
        "finetune", "task=classification", *TINY, "task.encoder=bilstm", f"hydra.run.dir={ws.root / 'tasks-cls'}"
    )
    return refused(proc, "encoder is not a key of the classification task")


def old_top_k(ws: Workspace) -> Outcome:
    return refused(_predict(ws, tagger_run(ws), "top_k=3"), "moved to task.top_k")


def key_the_task_ignores(ws: Workspace) -> Outcome:
    return refused(_predict(ws, tagger_run(ws), "task.max_new_tokens=5"), "task.max_new_tokens=5 is not read")


def finetune_option_the_task_does_not_read(ws: Workspace) -> Outcome:
    out = ws.root / "tasks-retrieval-head-lr"
    proc = ws.lmtrain("finetune", "task=retrieval", *TINY, "finetune.head_lr=0.01", f"hydra.run.dir={out}")
    return refused(proc, "finetune.head_lr=0.01 is not read by task=retrieval", not out.exists())


def max_seq_len_over_the_positions(ws: Workspace) -> Outcome:
    out = ws.root / "tasks-long"
    backbone = [key for key in TAGGER if not key.startswith("init=")] + [f"init={ws.root / 'finished'}"]
    proc = ws.lmtrain("finetune", *backbone, "data.max_seq_len=4096", f"hydra.run.dir={out}")
    return refused(proc, "data.max_seq_len=4096 is longer than the", not (out / "checkpoints").exists())


def _predict_into(ws: Workspace, output: Path) -> Outcome:
    """``lmtrain predict`` of the tagger on a two-line input file, written to ``output``."""
    inputs = ws.root / "tasks-inputs.txt"
    inputs.write_text("Alice visited Paris .\nBob left .\n")
    return ws.lmtrain("predict", f"ckpt={tagger_run(ws)}", f"input={inputs}", f"output={output}")


def predict_output_is_the_input(ws: Workspace) -> Outcome:
    inputs = ws.root / "tasks-inputs.txt"
    proc = _predict_into(ws, inputs)
    return refused(proc, "is the input file", inputs.read_text() == "Alice visited Paris .\nBob left .\n")


def predict_output_is_a_link(ws: Workspace) -> Outcome:
    victim, link = ws.root / "tasks-victim.txt", ws.root / "tasks-link.jsonl"
    victim.write_text("precious\n")
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    return refused(_predict_into(ws, link), "is a symbolic link", victim.read_text() == "precious\n")


def predict_output_is_a_file_of_another_kind(ws: Workspace) -> Outcome:
    notes = ws.root / "tasks-notes.csv"
    notes.write_text("name,score\nalice,3\n")
    proc = _predict_into(ws, notes)
    return refused(proc, "is not a JSON lines file of predictions", notes.read_text() == "name,score\nalice,3\n")


def predict_output_is_a_folder(ws: Workspace) -> Outcome:
    return refused(_predict_into(ws, ws.root), "is a folder; give the file to write")


def predict_output_under_a_file(ws: Workspace) -> Outcome:
    blocker = ws.root / "tasks-blocker.txt"
    blocker.write_text("mine\n")
    proc = _predict_into(ws, blocker / "deep" / "p.jsonl")
    return refused(proc, "its folder cannot be made", blocker.read_text() == "mine\n")


def head_kind_from_the_standard_library(ws: Workspace) -> Outcome:
    run = ws.root / "tasks-head"
    if not run.exists():
        shutil.copytree(tagger_run(ws), run, symlinks=True)
    for meta in run.glob("checkpoints/step-*/model.json"):
        info = json.loads(meta.read_text())
        info["task_heads"]["tagger"]["kind"] = "os.system"
        meta.write_text(json.dumps(info))
    before = digest(run)
    return refused(_predict(ws, run), "names a module of Python's standard library", digest(run) == before)


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "finetune.task_encoder= (task.encoder)": old_task_encoder,
    "finetune.task_lstm_dim= (task.lstm_dim)": old_task_lstm_dim,
    "task.encoder= with task=classification": tagger_key_for_classification,
    "predict top_k= (now task.top_k)": old_top_k,
    "predict task.max_new_tokens= for a tagger": key_the_task_ignores,
    "a head kind os.system in model.json": head_kind_from_the_standard_library,
    "finetune.head_lr= with task=retrieval (not read)": finetune_option_the_task_does_not_read,
    "data.max_seq_len= typed over the backbone's positions": max_seq_len_over_the_positions,
    "predict output= the input file": predict_output_is_the_input,
    "predict output= a link to another file": predict_output_is_a_link,
    "predict output= a CSV of the user's": predict_output_is_a_file_of_another_kind,
    "predict output= a folder": predict_output_is_a_folder,
    "predict output= under a file": predict_output_under_a_file,
}
