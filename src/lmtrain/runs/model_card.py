"""The model card (``README.md``) that `lmtrain export` writes beside the weights.

The Hub's format: a YAML header (``library_name``, ``pipeline_tag``, ``tags``, ``datasets``,
``metrics``, ``base_model`` when the run started from a Hub model), then what a reader needs to
trust the model: the command line, the data, steps and tokens, held-out metrics beside the
baselines the run measured, and the parameter count, as ``transformers``' Trainer writes them.
Every fact is read from the run directory (``summary.json``, ``.hydra/``); a checkpoint without
one gets a card with what its own files say.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lmtrain.hub import recorded_hub_model
from lmtrain.run_dir import SUMMARY_FILE
from lmtrain.runs.record import load_run

CARD_FILE = "README.md"
_PIPELINES = {"ForMaskedLM": "fill-mask", "ForPreTraining": "fill-mask", "LMHeadModel": "text-generation",
              "ForTokenClassification": "token-classification", "ForSequenceClassification": "text-classification"}
# lmtrain metric names -> the Hub's metric ids (names not listed are kept as they are)
_HUB_METRICS = {"ppl": "perplexity", "mlm_acc": "accuracy", "nsp_acc": "accuracy", "acc": "accuracy", "macro_f1": "f1"}


@dataclass
class CardFacts:
    """What the card says: the model, where it came from, and how it was trained and measured."""

    name: str
    model_type: str
    architecture: str
    parameters: int
    source: str  # what was exported (a run, a checkpoint, a Hugging Face model)
    base_model: str | None = None
    command: str | None = None
    data: str | None = None
    steps: int | None = None
    tokens: int | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> {final, best, start}
    baselines: dict[str, float] = field(default_factory=dict)


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint belongs to (``<run>/checkpoints/step-N``), or None."""
    run = checkpoint.parent.parent
    if checkpoint.parent.name == "checkpoints" and ((run / SUMMARY_FILE).is_file() or (run / ".hydra").is_dir()):
        return run
    return None


def _data_description(config: dict[str, Any]) -> str | None:
    data = config.get("data") or {}
    files = [str(f) for f in (data.get("train_files") or []) + [data.get("train_file"), data.get("eval_file")] if f]
    parts = [str(data["name"])] if data.get("name") else []
    return " — ".join(parts + ([", ".join(Path(f).name for f in files)] if files else [])) or None


def _metrics(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Held-out metrics by name: the final evaluation, the best one, and the one before training."""
    metrics: dict[str, dict[str, float]] = {}
    for key, value in summary.items():
        kind, _, name = key.partition("/")
        if kind in ("eval", "best", "start") and name and isinstance(value, (int, float)):
            metrics.setdefault(name, {})[{"eval": "final"}.get(kind, kind)] = value
    return {name: values for name, values in metrics.items() if "final" in values or "best" in values}


def card_facts(name: str, checkpoint: Path, meta: dict[str, Any], out_dir: Path, parameters: int) -> CardFacts:
    """Collect the card's facts about the model exported from ``checkpoint`` into ``out_dir``.

    Args:
        name: what the user exported (``ckpt=``), for the title and the source line.
        checkpoint: the checkpoint directory or Hugging Face folder exported.
        meta: its ``model.json`` (or a Hugging Face model's description, with ``base_model`` for a Hub model).
        out_dir: the exported folder (its config.json names the architecture).
        parameters: the model's parameter count.
    """
    config_json = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
    facts = CardFacts(name=out_dir.resolve().name, model_type=config_json.get("model_type", ""),
                      architecture=(config_json.get("architectures") or [""])[0], parameters=parameters,
                      source=meta.get("source") or f"{name} ({checkpoint})", base_model=meta.get("base_model"))
    run = run_dir_of(checkpoint)
    if run is None:
        return facts
    record = load_run(run)
    summary = record.summary
    hub = recorded_hub_model(str(summary.get("init", "")))
    facts.base_model = hub.repo if hub else facts.base_model
    facts.source = f"run {run}" + (f", fine-tuned from {summary['init']}" if summary.get("init") else "")
    overrides = [f"{key}={value}" for key, value in record.overrides.items()]
    facts.command = " ".join(["lmtrain", record.command or "<command>", *map(shlex.quote, overrides)])
    facts.data = _data_description(record.config)
    facts.steps, facts.tokens = record.steps, summary.get("train_tokens")
    facts.parameters = summary.get("parameters", parameters)
    facts.metrics = _metrics(summary)
    facts.baselines = {k[len("baseline/"):]: v for k, v in summary.items()
                       if k.startswith("baseline/") and isinstance(v, (int, float))}
    return facts


def _header(facts: CardFacts) -> dict[str, Any]:
    pipeline = next((tag for suffix, tag in _PIPELINES.items() if facts.architecture.endswith(suffix)), None)
    metric_ids = list(dict.fromkeys(_HUB_METRICS.get(m, m) for m in facts.metrics if "loss" not in m))
    header: dict[str, Any] = {"library_name": "transformers"}
    if pipeline:
        header["pipeline_tag"] = pipeline
    header["tags"] = ["lmtrain", *([facts.model_type] if facts.model_type else []), *([pipeline] if pipeline else [])]
    if facts.data:
        header["datasets"] = [facts.data.split(" — ")[0]]
    if metric_ids:
        header["metrics"] = metric_ids
    if facts.base_model:
        header["base_model"] = facts.base_model
    return header


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def render_card(facts: CardFacts) -> str:
    """The card's text: the YAML header between ``---`` lines, then Markdown."""
    lines = ["---", yaml.safe_dump(_header(facts), sort_keys=False).rstrip(), "---", "", f"# {facts.name}", "",
             f"A {facts.model_type} model ({facts.architecture}, {facts.parameters:,} parameters) exported by "
             f"lmtrain from {facts.source}" + (f"; based on [{facts.base_model}](https://huggingface.co/"
                                               f"{facts.base_model})." if facts.base_model else "."), ""]
    if facts.command is None:
        lines += ["Its training is not recorded here: it was exported without the run directory it came from.", ""]
        return "\n".join(lines)
    lines += ["## Training", "", f"- Command: `{facts.command}`", f"- Data: {facts.data or 'not recorded'}",
              f"- Steps: {_number(facts.steps)}", f"- Training tokens: {_number(facts.tokens)}",
              f"- Parameters: {facts.parameters:,}", ""]
    if facts.metrics:
        lines += ["## Held-out results", "", "| metric | final | best | before training |", "|---|---|---|---|"]
        lines += [f"| {name} | {_number(v.get('final'))} | {_number(v.get('best'))} | {_number(v.get('start'))} |"
                  for name, v in sorted(facts.metrics.items())]
        lines.append("")
    if facts.baselines:
        lines += ["Baselines (trivial predictors on the same held-out data):", ""]
        lines += [f"- {name}: {_number(value)}" for name, value in sorted(facts.baselines.items())]
        lines.append("")
    return "\n".join(lines)


def write_model_card(out_dir: Path, facts: CardFacts) -> Path:
    """Write ``README.md`` into ``out_dir``; returns its path."""
    path = Path(out_dir) / CARD_FILE
    path.write_text(render_card(facts), encoding="utf-8")
    return path
