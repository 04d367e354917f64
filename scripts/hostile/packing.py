"""``trainer.packing``: a value that is not a mode, ``on`` under ``trainer.compile`` and ``on`` for ELMo are refused
before a run folder exists; a batch of one row, batches with no padding, a training set with an empty sentence and a
causal model's padded batches train (skipping nothing where there is no padding) with finite losses."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path

from hostile.common import TINY, Outcome, Workspace, last_line, refused
from hostile.tasks import TAGGER

CLASSIFIER = ["task=classification", *TAGGER[1:], "trainer.preflight=false"]  # tiny, from scratch, 2 steps


def _losses(run: Path) -> list[float]:
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        return []
    events = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [event["train/loss"] for event in events if "train/loss" in event]


def _trained(proc: subprocess.CompletedProcess, run: Path, steps: int) -> Outcome:
    """Held when the run ended well with ``steps`` finite training losses."""
    losses = _losses(run)
    held = proc.returncode == 0 and len(losses) == steps and all(math.isfinite(x) for x in losses)
    return Outcome(proc.returncode, f"train/loss {losses}" if proc.returncode == 0 else last_line(proc), held)


def not_a_mode(ws: Workspace) -> Outcome:
    out = ws.root / "packing-yes"
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, "trainer.packing=yes", f"hydra.run.dir={out}")
    return refused(proc, "trainer.packing=yes: must be one of auto | on | off", not out.exists())


def on_with_compile(ws: Workspace) -> Outcome:
    out = ws.root / "packing-compile"
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, "trainer.packing=on", "trainer.compile=true", f"hydra.run.dir={out}")
    return refused(proc, "trainer.packing=on: must be auto or off with trainer.compile=true", not out.exists())


def one_row(ws: Workspace) -> Outcome:
    out = ws.root / "packing-one-row"
    proc = ws.lmtrain("finetune", *CLASSIFIER, "trainer.batch_size=1", "trainer.packing=on", f"hydra.run.dir={out}")
    return _trained(proc, out, 2)


def rows_all_full(ws: Workspace) -> Outcome:
    """Pretraining blocks have no padding: with packing on, the run is the finished (auto) run, loss for loss."""
    out = ws.root / "packing-full"
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, "trainer.packing=on", f"hydra.run.dir={out}")
    outcome = _trained(proc, out, 4)
    same = _losses(out) == _losses(ws.root / "finished")
    note = "" if same else " (not the unpacked run's losses)"
    return Outcome(outcome.code, outcome.message + note, outcome.held and same)


def empty_sentence(ws: Workspace) -> Outcome:
    """A training row with no text: its row holds only the special tokens (never all padding); it trains packed."""
    data = ws.root / "packing-empty.tsv"
    texts = ["a dull film of some length", "a fine film"]
    rows = ["sentence\tlabel", *(f"{texts[i % 2]}\t{i % 2}" for i in range(40))]
    data.write_text("\n".join([*rows, "\t1", ""]), encoding="utf-8")
    out = ws.root / "packing-empty"
    proc = ws.lmtrain(
        "finetune",
        *CLASSIFIER,
        f"data.train_file={data}",
        f"data.eval_file={data}",
        "trainer.packing=on",
        f"hydra.run.dir={out}",
    )
    if proc.returncode == 2 and "Traceback" not in proc.stderr:  # refused with a message: also holds
        return Outcome(2, last_line(proc), True)
    return _trained(proc, out, 2)


def causal_padded(ws: Workspace) -> Outcome:
    """A causal model's padded prompt + completion batches: the padding skipped, each token attending only to its
    own sentence's earlier tokens; trains with finite losses."""
    out = ws.root / "packing-causal"
    generator = ["task=generation", *TAGGER[1:], "trainer.preflight=false"]
    proc = ws.lmtrain("finetune", *generator, "trainer.packing=on", f"hydra.run.dir={out}")
    return _trained(proc, out, 2)


def saved_before_packing(ws: Workspace) -> Outcome:
    """A run folder whose saved config has no ``trainer.packing`` (an earlier version's) resumes unpacked, as it ran."""
    out = ws.root / "packing-old-run"
    first = ws.lmtrain("finetune", *CLASSIFIER, "trainer.packing=off", f"hydra.run.dir={out}")
    if first.returncode != 0:
        return Outcome(first.returncode, last_line(first), False)
    config = out / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("  packing: 'off'\n", ""))
    proc = ws.lmtrain("resume", str(out), "trainer.max_steps=4")
    said = "resuming with trainer.packing=off, as it ran" in " ".join(proc.stderr.split())
    return Outcome(proc.returncode, last_line(proc), proc.returncode == 0 and said)


def on_without_a_transformer(ws: Workspace) -> Outcome:
    """ELMo has no Transformer backbone: packing=on is refused, never silently ignored, before a run folder exists."""
    out = ws.root / "packing-elmo"
    proc = ws.lmtrain("pretrain", "model=elmo", "debug=tiny", "trainer.packing=on", f"hydra.run.dir={out}")
    return refused(proc, "trainer.packing=on: must be auto or off for model=elmo", not out.exists())


def on_with_an_elmo_run_as_init(ws: Workspace) -> Outcome:
    """``finetune init=<an ELMo run> trainer.packing=on``: refused from the run's model.json, before a run folder."""
    from hostile.capabilities import _elmo_run

    out = ws.root / "packing-elmo-init"
    proc = ws.lmtrain(
        "finetune", "task=ner", "debug=tiny", f"init={_elmo_run(ws)}", "trainer.packing=on", f"hydra.run.dir={out}"
    )
    return refused(proc, "trainer.packing=on: must be auto or off for init=", not out.exists())


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "trainer.packing=yes": not_a_mode,
    "trainer.packing=on with trainer.compile=true": on_with_compile,
    "a batch of one row, packing=on": one_row,
    "all rows full (pretraining blocks), packing=on": rows_all_full,
    "an empty training sentence, packing=on": empty_sentence,
    "a causal model's padded batches (generation), packing=on": causal_padded,
    "a run saved before trainer.packing existed, resumed": saved_before_packing,
    "trainer.packing=on for ELMo (no Transformer backbone)": on_without_a_transformer,
    "trainer.packing=on for finetune init=<an ELMo run>": on_with_an_elmo_run_as_init,
}
