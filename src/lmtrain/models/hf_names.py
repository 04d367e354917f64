"""Hugging Face's names for lmtrain's models: the one map between their ``model_type`` and lmtrain's presets.

Like the weight name maps (:mod:`lmtrain.models.hf_interop`), these are the only place Hugging Face
names appear; nothing else tests a model's name.
"""

from __future__ import annotations

# Hugging Face model_type -> lmtrain's model name
HF_MODEL_NAMES = {"bert": "bert", "roberta": "roberta", "xlm-roberta": "roberta", "gpt2": "gpt"}
# the heads a Hugging Face model carries -> the objective it was trained with; else by its model name
HF_OBJECTIVES = {("mlm", "nsp"): "mlm_nsp", ("mlm",): "mlm", ("lm",): "clm"}
DEFAULT_OBJECTIVES = {"bert": "mlm", "roberta": "mlm", "gpt": "clm"}
# lmtrain's model name (or a Hugging Face model_type it came from) -> the architecture `lmtrain export` writes
EXPORT_MODEL_TYPES = {"bert": "bert", "roberta": "roberta", "gpt": "gpt2", "gpt2": "gpt2"}
