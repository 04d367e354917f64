"""Typed configuration: one dataclass per config group and per plug, registered with Hydra's ConfigStore.

YAML files under ``configs/`` only compose and override these schemas, so a misspelt key, a key
of another model family, or a value of the wrong type fails before any work starts. Each schema's
``__post_init__`` checks the ranges of its own values (:func:`lmtrain.config.checks.check_config`
runs them on a composed config). Each field carries its default and a one-line description.

The plug groups register their schemas under ``schema/<group>/<name>``; a preset names its schema
in its defaults list (``- /schema/model/transformer@model``) and only overrides values.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from lmtrain.config.commands import (
    EMBED_SCHEMAS,
    EmbedConfig,
    EmbedEvalConfig,
    EmbedMethodConfig,
    EvaluateConfig,
    ExportConfig,
    FinetuneConfig,
    FinetuneOptions,
    GenerateConfig,
    GloveConfig,
    LoadVectorsConfig,
    PredictConfig,
    PretrainConfig,
    Word2VecConfig,
)
from lmtrain.config.data import (
    ClassificationDataConfig,
    DataConfig,
    GenerationDataConfig,
    ImageCaptionDataConfig,
    NerDataConfig,
    RetrievalDataConfig,
    TaskDataConfig,
    TextDataConfig,
)
from lmtrain.config.models import MODEL_SCHEMAS, AlbefConfig, ElmoConfig, ModelConfig, TransformerConfig
from lmtrain.config.objectives import (
    OBJECTIVE_SCHEMAS,
    BidirectionalLMConfig,
    CausalLMConfig,
    ImageTextConfig,
    MaskedLMConfig,
    MaskingConfig,
    ObjectiveConfig,
)
from lmtrain.config.tasks import (
    ClassificationTaskConfig,
    GenerationTaskConfig,
    NerTaskConfig,
    RetrievalTaskConfig,
    TaskConfig,
)
from lmtrain.config.training import OptimConfig, TokenizerConfig, TrainerConfig

# command -> the schema of its composed config
SCHEMAS = {
    "pretrain": PretrainConfig,
    "generate": GenerateConfig,
    "evaluate": EvaluateConfig,
    "embed": EmbedConfig,
    "finetune": FinetuneConfig,
    "predict": PredictConfig,
    "export": ExportConfig,
}

# ConfigStore group -> {name: schema}: what presets (and users' own YAML) extend
PLUG_SCHEMAS = {
    "schema/model": MODEL_SCHEMAS,
    "schema/objective": OBJECTIVE_SCHEMAS,
    "schema/embed": EMBED_SCHEMAS,
    "schema/task": {
        "ner": NerTaskConfig,
        "classification": ClassificationTaskConfig,
        "generation": GenerationTaskConfig,
        "retrieval": RetrievalTaskConfig,
    },
    "schema/data": {
        "text": TextDataConfig,
        "image_caption": ImageCaptionDataConfig,
        "ner": NerDataConfig,
        "classification": ClassificationDataConfig,
        "generation": GenerationDataConfig,
        "retrieval": RetrievalDataConfig,
    },
}


_registered = False


def register_configs() -> None:
    """Register every command schema (as ``<command>_schema``) and every plug schema with Hydra (once a process)."""
    global _registered
    if _registered:
        return
    _registered = True
    store = ConfigStore.instance()
    for command, schema in SCHEMAS.items():
        store.store(name=f"{command}_schema", node=schema)
    for group, schemas in PLUG_SCHEMAS.items():
        for name, schema in schemas.items():
            store.store(group=group, name=name, node=schema)


__all__ = [
    "SCHEMAS",
    "PLUG_SCHEMAS",
    "register_configs",
    "PretrainConfig",
    "GenerateConfig",
    "EvaluateConfig",
    "EmbedConfig",
    "EmbedMethodConfig",
    "Word2VecConfig",
    "GloveConfig",
    "LoadVectorsConfig",
    "EmbedEvalConfig",
    "FinetuneConfig",
    "FinetuneOptions",
    "PredictConfig",
    "ExportConfig",
    "DataConfig",
    "TextDataConfig",
    "ImageCaptionDataConfig",
    "TaskDataConfig",
    "NerDataConfig",
    "ClassificationDataConfig",
    "GenerationDataConfig",
    "RetrievalDataConfig",
    "ModelConfig",
    "TransformerConfig",
    "ElmoConfig",
    "AlbefConfig",
    "ObjectiveConfig",
    "MaskingConfig",
    "MaskedLMConfig",
    "CausalLMConfig",
    "BidirectionalLMConfig",
    "ImageTextConfig",
    "TaskConfig",
    "NerTaskConfig",
    "ClassificationTaskConfig",
    "GenerationTaskConfig",
    "RetrievalTaskConfig",
    "OptimConfig",
    "TokenizerConfig",
    "TrainerConfig",
]
