"""The model card (``README.md``) that `lmtrain export` writes beside the weights.

The Hub's format: a YAML header (``library_name``, ``pipeline_tag``, ``tags``, ``datasets``,
``metrics``, ``base_model`` when the run started from a Hub model), then what a reader needs to
trust the model: the command line, the data, steps and tokens, held-out metrics beside the
baselines the run measured, and the parameter count, as ``transformers``' Trainer writes them.
Every fact is read from the run directory (``summary.json``, ``.hydra/``; never ``metrics.jsonl``,
which a kill may have cut), before anything is written; a checkpoint without one, or a fact of the
wrong type, gets a card with what its own files say. Names and values from those files are escaped
(:func:`markdown_text`), so none of them becomes a heading, a link or HTML on the Hub's page.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lmtrain.hub import parse_hub_id, recorded_hub_model
from lmtrain.run_folder.layout import SUMMARY_FILE
from lmtrain.run_folder.status import read_status

log = logging.getLogger(__name__)
CARD_FILE = "README.md"
_PIPELINES = {
    "ForMaskedLM": "fill-mask",
    "ForPreTraining": "fill-mask",
    "LMHeadModel": "text-generation",
    "ForTokenClassification": "token-classification",
    "ForSequenceClassification": "text-classification",
}
# lmtrain metric names -> the Hub's metric ids (names not listed are kept as they are)
_HUB_NAME = re.compile(r"[\w.\-/]+")  # what the header's metric and dataset ids may hold
_HUB_METRICS = {"ppl": "perplexity", "mlm_acc": "accuracy", "nsp_acc": "accuracy", "acc": "accuracy", "macro_f1": "f1"}


@dataclass
class CardFacts:
    """What the card says: the model, where it came from, and how it was trained and measured."""

    name: str
    parameters: int
    source: str  # what was exported (a run, a checkpoint, a Hugging Face model)
    base_model: str | None = None
    command: str | None = None
    data: str | None = None
    steps: int | None = None
    tokens: int | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> {final, best, start}
    baselines: dict[str, float] = field(default_factory=dict)
    model_type: str = ""  # these two from the exported config.json (see :func:`write_model_card`)
    architecture: str = ""


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint belongs to (``<run>/checkpoints/step-N``), or None."""
    run = checkpoint.parent.parent
    if checkpoint.parent.name == "checkpoints" and ((run / SUMMARY_FILE).is_file() or (run / ".hydra").is_dir()):
        return run
    return None


def _data_description(config: dict[str, Any]) -> str | None:
    data = config.get("data")
    if not isinstance(data, dict):
        data = {}
    train_files = data.get("train_files")
    if not isinstance(train_files, list):
        train_files = []
    files = [f for f in [*train_files, data.get("train_file"), data.get("eval_file")] if isinstance(f, str) and f]
    parts = [str(data["name"])] if data.get("name") else []
    return " — ".join(parts + ([", ".join(Path(f).name for f in files)] if files else [])) or None


def _number_or_none(value: Any) -> int | float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _count_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _metrics(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Held-out metrics by name: the final evaluation, the best one, and the one before training."""
    metrics: dict[str, dict[str, float]] = {}
    for key, value in summary.items():
        kind, _, name = key.partition("/")
        if kind in ("eval", "best", "start") and name and _number_or_none(value) is not None:
            metrics.setdefault(name, {})[{"eval": "final"}.get(kind, kind)] = value
    return {name: values for name, values in metrics.items() if "final" in values or "best" in values}


def _read_mapping(path: Path) -> dict[str, Any]:
    """The object in a JSON or YAML file; {} (with a warning) when it is missing, unreadable or no object."""
    if not path.is_file():
        return {}
    load = json.loads if path.suffix == ".json" else yaml.safe_load
    try:
        value = load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as error:
        value = error
    if not isinstance(value, dict):
        log.warning(
            "%s is not a readable mapping (%s); the model card leaves out what it says",
            path,
            " ".join(str(value).split())[:200],
        )
        return {}
    return value


def _read_overrides(run: Path) -> list[str]:
    """The command-line overrides saved in ``.hydra/overrides.yaml``, as the user typed them."""
    path = run / ".hydra" / "overrides.yaml"
    try:
        items = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else []
    except (OSError, ValueError, yaml.YAMLError):
        items = None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        log.warning("%s is not a list of overrides; the model card leaves the command's overrides out", path)
        return []
    return items


def card_facts(name: str, checkpoint: Path, meta: dict[str, Any], title: str, parameters: int) -> CardFacts:
    """Collect the card's facts about the model exported from ``checkpoint`` (read before anything is written).

    Args:
        name: what the user exported (``ckpt=``), for the source line.
        checkpoint: the checkpoint directory or Hugging Face folder exported.
        meta: its ``model.json`` (or a Hugging Face model's description, with ``base_model`` for a Hub model).
        title: the card's title (the exported folder's name).
        parameters: the model's parameter count.
    """
    facts = CardFacts(
        name=title,
        parameters=parameters,
        source=str(meta.get("source") or f"{name} ({checkpoint})"),
        base_model=meta.get("base_model"),
    )
    run = run_dir_of(checkpoint)
    if run is None:
        return facts
    summary = _read_mapping(run / SUMMARY_FILE)
    config = summary.get("config")
    if not isinstance(config, dict):
        config = _read_mapping(run / ".hydra" / "config.yaml")
    init = summary.get("init") if isinstance(summary.get("init"), str) else None
    hub = recorded_hub_model(init or "")
    facts.base_model = hub.repo if hub else facts.base_model
    facts.source = f"run {run}" + (f", fine-tuned from {init}" if init else "")
    command = summary.get("command") or (read_status(run) or {}).get("command")
    command = command if isinstance(command, str) else ("finetune" if "task" in config else "<command>")
    facts.command = " ".join(["lmtrain", command, *map(shlex.quote, _read_overrides(run))])
    facts.data = _data_description(config)
    steps = _count_or_none(summary.get("steps"))
    facts.steps = steps if steps is not None else _count_or_none(meta.get("step"))
    facts.tokens = _count_or_none(summary.get("train_tokens"))
    facts.parameters = _count_or_none(summary.get("parameters")) or parameters
    facts.metrics = _metrics(summary)
    facts.baselines = {
        k[len("baseline/") :]: v
        for k, v in summary.items()
        if k.startswith("baseline/") and _number_or_none(v) is not None
    }
    return facts


def _header(facts: CardFacts) -> dict[str, Any]:
    pipeline = next((tag for suffix, tag in _PIPELINES.items() if facts.architecture.endswith(suffix)), None)
    metric_ids = [
        m
        for m in dict.fromkeys(_HUB_METRICS.get(m, m) for m in facts.metrics if "loss" not in m)
        if _HUB_NAME.fullmatch(m)
    ]
    header: dict[str, Any] = {"library_name": "transformers"}
    if pipeline:
        header["pipeline_tag"] = pipeline
    header["tags"] = ["lmtrain", *([facts.model_type] if facts.model_type else []), *([pipeline] if pipeline else [])]
    if facts.data and _HUB_NAME.fullmatch(facts.data.split(" — ")[0]):
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


# Markdown's inline punctuation, and ``_`` where it can start or end emphasis (not between letters: ``a_b``)
_MARKDOWN_PUNCTUATION = re.compile(r"[\\`*\[\]|!#~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_BLOCK_START = re.compile(r"^(?:[-+=]|\d+(?=[.)]))")  # what would open a list or a heading at a line's start


def markdown_text(value: Any) -> str:
    """``value`` as plain text on one line of Markdown: never a heading, list, link, image, code or HTML."""
    text = "".join(c if c.isprintable() else " " for c in " ".join(str(value).split()))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_PUNCTUATION.sub(lambda m: "\\" + m.group(0), text)
    return _BLOCK_START.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\" + m.group(0), text)


def code_block(text: str) -> list[str]:
    """``text`` as a fenced code block whose fence no run of backticks in ``text`` can close."""
    text = "".join(c if c.isprintable() or c == "\n" else "?" for c in text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "bash", text, fence]


def _based_on(base_model: str | None) -> str:
    if not base_model:
        return "."
    if parse_hub_id(base_model) is None:  # not a Hub id: named, never linked
        return f"; based on {markdown_text(base_model)}."
    return f"; based on [{markdown_text(base_model)}](https://huggingface.co/{base_model})."


def render_card(facts: CardFacts) -> str:
    """The card's text: the YAML header between ``---`` lines, then Markdown (every recorded value escaped)."""
    lines = [
        "---",
        yaml.safe_dump(_header(facts), sort_keys=False).rstrip(),
        "---",
        "",
        f"# {markdown_text(facts.name)}",
        "",
        f"A {markdown_text(facts.model_type)} model ({markdown_text(facts.architecture)}, "
        f"{_number(facts.parameters)} parameters) exported by lmtrain from {markdown_text(facts.source)}"
        f"{_based_on(facts.base_model)}",
        "",
    ]
    if facts.command is None:
        lines += ["Its training is not recorded here: it was exported without the run directory it came from.", ""]
        return "\n".join(lines)
    lines += [
        "## Training",
        "",
        "Command:",
        "",
        *code_block(facts.command),
        "",
        f"- Data: {markdown_text(facts.data or 'not recorded')}",
        f"- Steps: {_number(facts.steps)}",
        f"- Training tokens: {_number(facts.tokens)}",
        f"- Parameters: {_number(facts.parameters)}",
        "",
    ]
    if facts.metrics:
        lines += ["## Held-out results", "", "| metric | final | best | before training |", "|---|---|---|---|"]
        lines += [
            f"| {markdown_text(name)} | {_number(v.get('final'))} | {_number(v.get('best'))} | "
            f"{_number(v.get('start'))} |"
            for name, v in sorted(facts.metrics.items())
        ]
        lines.append("")
    if facts.baselines:
        lines += ["Baselines (trivial predictors on the same held-out data):", ""]
        lines += [f"- {markdown_text(name)}: {_number(value)}" for name, value in sorted(facts.baselines.items())]
        lines.append("")
    return "\n".join(lines)


def write_model_card(out_dir: Path, facts: CardFacts) -> Path:
    """Write ``README.md`` into the exported folder ``out_dir`` (its config.json names the architecture).

    Returns:
        The card's path.
    """
    config = json.loads((Path(out_dir) / "config.json").read_text(encoding="utf-8"))
    facts.model_type, facts.architecture = config.get("model_type", ""), (config.get("architectures") or [""])[0]
    path = Path(out_dir) / CARD_FILE
    path.write_text(render_card(facts), encoding="utf-8")
    return path
