"""The model families as plugs: how each is built from its config and rebuilt from a checkpoint.

A model config names its family's class in ``_target_`` (the schema sets it); `lmtrain pretrain`
builds through it, and every command that loads a checkpoint finds the family by the ``family``
recorded in ``model.json``. A family of your own subclasses :class:`ModelFamily` in your package:
it registers itself under its ``name`` when its module is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Sequence

from lmtrain.config.models import AlbefConfig, ElmoConfig, ModelConfig, TransformerConfig
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.protocol import TrainedModel
from lmtrain.shell_words import command, override


class ModelFamily:
    """Base class of model family plugs.

    Attributes:
        name: the family (``model.family``, recorded in model.json).
        config_class: the family's schema (types a user's YAML that names this class in ``_target_``).
        registry: every family class by name (filled as subclasses are defined).
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = ModelConfig
    registry: ClassVar[dict[str, type[ModelFamily]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            ModelFamily.registry[cls.name] = cls

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg

    def build(self, tokenizer: TextTokenizer, head_names: Sequence[str], max_seq_len: int) -> TrainedModel:
        """A freshly initialised model for ``tokenizer``'s vocabulary with the pretraining heads ``head_names``."""
        raise NotImplementedError

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> TrainedModel:
        """The (untrained) model a checkpoint's ``model.json`` describes; its weights are loaded after."""
        raise NotImplementedError

    def next_commands(self, run: Path) -> list[str]:
        """What a user runs next with a model of this family (besides the objective's suggestions)."""
        return []

    @staticmethod
    def named(name: str | None, target: str | None = None) -> type[ModelFamily]:
        """The family class registered as ``name``; a family of your own is imported from ``target`` (its
        ``_target_``, which model.json records) when this process has not imported it yet.

        Raises:
            UserError: no such family (its package is not importable).
        """
        if name not in ModelFamily.registry and target:
            from lmtrain.plugs import plug_class

            plug_class(target, "model", ModelFamily)  # importing its module registers it
        if name not in ModelFamily.registry:
            raise UserError(f"model family {name!r} is not known here (known: {', '.join(sorted(ModelFamily.registry))}); "
                            "a family of your own must be importable (on PYTHONPATH) and named by the model config's "
                            "_target_.")
        return ModelFamily.registry[name]


def _check_positions(max_seq_len: int, max_positions: int) -> None:
    if max_seq_len > max_positions:
        raise UserError(f"data.max_seq_len={max_seq_len} is longer than model.max_positions={max_positions}; "
                        "lower the first or raise the second.")


class TransformerFamily(ModelFamily):
    """BERT, RoBERTa and GPT-2: one Transformer backbone, presets set its switches."""

    name = "transformer"
    config_class = TransformerConfig

    def build(self, tokenizer: TextTokenizer, head_names: Sequence[str], max_seq_len: int) -> TrainedModel:
        """A :class:`LanguageModel` with the given heads."""
        from lmtrain.models.language_model import LanguageModel
        from lmtrain.models.spec import resolve_spec

        spec = resolve_spec(self.cfg, tokenizer.vocab_size, tokenizer.id("pad"))
        _check_positions(max_seq_len, spec.max_positions)
        return LanguageModel(spec, tuple(head_names))

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> TrainedModel:
        """A :class:`LanguageModel` with the checkpoint's pretraining and task heads."""
        from lmtrain.models.language_model import LanguageModel
        from lmtrain.models.spec import TransformerSpec

        return LanguageModel(TransformerSpec.from_dict(meta["spec"]), meta["heads"], meta.get("task_heads"))

    def next_commands(self, run: Path) -> list[str]:
        """Export to a Hugging Face folder."""
        return [command("export", override("ckpt", run), override("out", f"{run}-hf"))]  # beside the run: export writes into no run folder


class ElmoFamily(ModelFamily):
    """ELMo's biLM: character CNN (or token table) + forward and backward LSTMs."""

    name = "elmo"
    config_class = ElmoConfig

    def build(self, tokenizer: TextTokenizer, head_names: Sequence[str], max_seq_len: int) -> TrainedModel:
        """The biLM, its character table spelling ``tokenizer``'s vocabulary."""
        from lmtrain.models.char_cnn import tokenizer_strings
        from lmtrain.models.elmo import build_elmo, resolve_elmo_spec

        spec = resolve_elmo_spec(self.cfg, tokenizer.vocab_size, tokenizer.id("pad"))
        return build_elmo(spec, tokenizer_strings(tokenizer))

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> TrainedModel:
        """The biLM, or a fine-tuned ELMo-feature task model; the char table is a buffer the weights fill in."""
        from lmtrain.models.elmo import ElmoLanguageModel, ElmoSpec
        from lmtrain.models.elmo_features import ElmoTaskModel

        spec = ElmoSpec.from_dict(meta["spec"])
        if meta.get("task_heads"):
            return ElmoTaskModel(spec, meta["task_heads"])
        return ElmoLanguageModel(spec, meta["heads"])


class AlbefFamily(ModelFamily):
    """ALBEF: a ViT, a text encoder and a fusion encoder, with momentum copies."""

    name = "albef"
    config_class = AlbefConfig

    def build(self, tokenizer: TextTokenizer, head_names: Sequence[str], max_seq_len: int) -> TrainedModel:
        """An :class:`AlbefModel` for captions of at most ``max_seq_len`` tokens."""
        from lmtrain.models.albef import AlbefModel, resolve_albef_spec

        spec = resolve_albef_spec(self.cfg, tokenizer.vocab_size, tokenizer.id("pad"))
        _check_positions(max_seq_len, spec.text.max_positions)
        return AlbefModel(spec, tuple(head_names))

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> TrainedModel:
        """An :class:`AlbefModel` with the checkpoint's heads."""
        from lmtrain.models.albef import AlbefModel, AlbefSpec

        return AlbefModel(AlbefSpec.from_dict(meta["spec"]), meta["heads"])
