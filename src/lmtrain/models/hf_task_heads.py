"""Hugging Face names of fine-tuning heads: export to *ForTokenClassification / *ForSequenceClassification.

Extends :mod:`lmtrain.models.hf_weight_names` (which maps the backbone and the pretraining heads) with
the task heads lmtrain fine-tunes. Both heads match Hugging Face's exactly in eval mode:

* tagger (dropout -> linear) = ``classifier`` of ``*ForTokenClassification``;
* classifier (dense -> tanh -> linear on the first token) = BERT's ``bert.pooler.dense`` +
  ``classifier``, RoBERTa's ``classifier.dense`` + ``classifier.out_proj``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lmtrain.data.hf_tokenizer import write_hf_tokenizer_files
from lmtrain.errors import UserError
from lmtrain.models.hf_config_map import hf_config_from_spec
from lmtrain.models.hf_interop import export_hf_folder, write_hf_folder
from lmtrain.models.hf_weight_names import lmtrain_to_hf
from lmtrain.models.language_model import LanguageModel

_ARCH = {"bert": "Bert", "roberta": "Roberta", "xlm-roberta": "XLMRoberta"}
_POOLED = {
    "bert": {"dense": "bert.pooler.dense", "output": "classifier"},
    "roberta": {"dense": "classifier.dense", "output": "classifier.out_proj"},
    "xlm-roberta": {"dense": "classifier.dense", "output": "classifier.out_proj"},
}


def task_head_tensors(model: LanguageModel, model_type: str) -> tuple[str, dict[str, torch.Tensor], dict]:
    """Architecture name, Hugging Face tensors and config entries of the model's one task head."""
    if model_type not in _ARCH:
        raise UserError(f"a fine-tuned tagging or classification model exports as bert or roberta, not {model_type}.")
    if len(model.task_heads) != 1:
        raise UserError(f"the model has task heads {list(model.task_heads)}; export writes models with exactly one.")
    ((name, description),) = model.task_heads.items()
    if description["kind"] not in ("token_classifier", "pooled_classifier"):
        raise UserError(
            f"the model's task head '{name}' is a {description['kind']}, which has no Hugging Face "
            "architecture; export it with format=safetensors (lmtrain's own weights) instead."
        )
    state = model.state_dict()

    def take(ours: str, hf: str) -> dict[str, torch.Tensor]:
        return {
            f"{hf}.{kind}": state[f"heads.{name}.{ours}.{kind}"].detach().cpu().clone().contiguous()
            for kind in ("weight", "bias")
        }

    if description.get("encoder", "linear") != "linear" or description.get("crf"):
        raise UserError(
            "the model's tagger has a task biLSTM or a CRF, which Hugging Face's *ForTokenClassification "
            "cannot hold; export a tagger fine-tuned with task.encoder=linear task.crf=false."
        )
    extra = {"classifier_dropout": description.get("dropout", 0.0)}
    if description["kind"] == "token_classifier":
        return _ARCH[model_type] + "ForTokenClassification", take("output", "classifier"), extra
    names = _POOLED[model_type]
    tensors = {**take("dense", names["dense"]), **take("output", names["output"])}
    return (
        _ARCH[model_type] + "ForSequenceClassification",
        tensors,
        {**extra, "problem_type": "single_label_classification"},
    )


def _export_finetuned(
    model: LanguageModel,
    model_type: str,
    out_dir: Path,
    task: Mapping[str, Any] | None,
    token_ids: Mapping[str, int] | None,
    tokenizer_json: Path | None,
) -> Path:
    arch, head_tensors, extra = task_head_tensors(model, model_type)
    config = hf_config_from_spec(model.spec, model_type, [], token_ids)
    n_classes = next(iter(model.task_heads.values()))["n_classes"]
    labels = list((task or {}).get("labels") or [f"LABEL_{i}" for i in range(n_classes)])
    config.update(
        architectures=[arch],
        id2label={str(i): label for i, label in enumerate(labels)},
        label2id={label: i for i, label in enumerate(labels)},
        **extra,
    )
    backbone = {k: v for k, v in model.state_dict().items() if not k.startswith("heads.")}
    tensors = {**lmtrain_to_hf(backbone, model.spec, model_type), **head_tensors}
    return write_hf_folder(out_dir, config, tensors, tokenizer_json)


def export_model(
    model: LanguageModel,
    model_type: str,
    out_dir: str | Path,
    tokenizer_json: Path | None,
    roles: Mapping[str, str],
    token_ids: Mapping[str, int] | None = None,
    task: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` (pretrained or fine-tuned) as a Hugging Face folder with its tokenizer.

    Args:
        model: the lmtrain model; pretraining heads map to *ForPreTraining / *ForMaskedLM / GPT2LMHeadModel,
            a task head to *ForTokenClassification / *ForSequenceClassification.
        model_type: bert, roberta, xlm-roberta or gpt2.
        out_dir: folder to write.
        tokenizer_json: the checkpoint's tokenizer.json (copied, with tokenizer_config.json), or None.
        roles: special-token roles of the tokenizer.
        token_ids: role -> id, for bos / eos in config.json.
        task: the checkpoint's task description (labels become id2label / label2id).
    Returns:
        The folder.
    """
    out_dir = Path(out_dir).expanduser()
    if model.task_heads:
        _export_finetuned(model, model_type, out_dir, task, token_ids, tokenizer_json)
    else:
        export_hf_folder(model, model_type, out_dir, tokenizer_json, token_ids)
    if tokenizer_json is not None:
        write_hf_tokenizer_files(out_dir, dict(roles), model.spec.max_positions, model.spec.segment_vocab_size > 0)
    return out_dir
