"""Capabilities: a model given to a command or objective that needs what its family lacks is refused with exit 2,
naming the capability and what to do, before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hostile.common import TINY, Outcome, Workspace, refused


def _elmo_run(ws: Workspace) -> Path:
    """A tiny ELMo run (token features and a biLM; no causal LM head, no Hugging Face architecture), made once."""
    run = ws.root / "elmo"
    if not (run / "checkpoints" / "last").exists():
        ws.lmtrain(
            "pretrain",
            "model=elmo",
            *TINY,
            "model.token_encoder=embedding",
            "model.lstm_dim=32",
            *ws.data,
            f"hydra.run.dir={run}",
        )
    return run


def bidirectional_model_as_causal_lm(ws: Workspace) -> Outcome:
    # before: BERT trained on next-token prediction while its attention saw the next token
    run = ws.root / "bert-clm"
    proc = ws.lmtrain("pretrain", "objective=clm", "tokenizer=gpt2_bpe", *TINY, *ws.data, f"hydra.run.dir={run}")
    return refused(proc, "objective=clm needs a causal LM head", not run.exists())


def causal_lm_from_a_bidirectional_start(ws: Workspace) -> Outcome:
    run = ws.root / "clm-from-bert"
    proc = ws.lmtrain(
        "pretrain", "objective=clm", f"init={ws.root / 'finished'}", *TINY, *ws.data, f"hydra.run.dir={run}"
    )
    return refused(proc, "which lacks a causal LM head", not (run / "checkpoints").exists())


def biLM_to_hugging_face(ws: Workspace) -> Outcome:
    out = ws.root / "elmo-hf"
    proc = ws.lmtrain("export", f"ckpt={_elmo_run(ws)}", "format=hf", f"out={out}")
    return refused(proc, "which lacks a Hugging Face architecture to export to", not out.exists())


def biLM_to_generate(ws: Workspace) -> Outcome:
    proc = ws.lmtrain(
        "generate", f"ckpt={_elmo_run(ws)}", "prompt=the old barn", f"hydra.run.dir={ws.root / 'elmo-generate'}"
    )
    return refused(proc, "which lacks a causal LM head (next-token prediction) or a masked LM head")


def generation_task_on_a_bidirectional_model(ws: Workspace) -> Outcome:
    pairs = ws.root / "pairs.jsonl"
    pairs.write_text('{"prompt": "the old", "completion": " barn"}\n' * 20)
    run = ws.root / "generation-on-bert"
    proc = ws.lmtrain(
        "finetune",
        "task=generation",
        f"init={ws.root / 'finished'}",
        f"data.train_file={pairs}",
        f"hydra.run.dir={run}",
    )
    return refused(proc, "this task needs a causal LM head", not (run / "checkpoints").exists())


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "a bidirectional model trained as a causal LM": bidirectional_model_as_causal_lm,
    "objective=clm from a bidirectional init=": causal_lm_from_a_bidirectional_start,
    "a biLM exported as a Hugging Face model": biLM_to_hugging_face,
    "a biLM given to generate": biLM_to_generate,
    "task=generation on a bidirectional model": generation_task_on_a_bidirectional_model,
}
