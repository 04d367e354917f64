"""The model families as plugs: how each is built from its config and rebuilt from a checkpoint.

A model config names its family's class in ``_target_`` (the schema sets it); `lmtrain pretrain`
builds through it, and every command that loads a checkpoint finds the family by the ``family``
recorded in ``model.json``. A family of your own subclasses :class:`ModelFamily` in your package:
it registers itself under its ``name`` when its module is imported, and says what its models can do
(:mod:`lmtrain.models.capabilities`): commands and objectives ask for those, never for a name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from lmtrain.config.models import AlbefConfig, ElmoConfig, ModelConfig, TransformerConfig
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.capabilities import Capability
from lmtrain.models.fine_tuning import freeze_modules, freeze_transformer, load_backbone_weights, transformer_task_model
from lmtrain.models.protocol import ModelSpec, NamedHeads
from lmtrain.shell_words import command, override

log = logging.getLogger(__name__)


class ModelFamily:
    """Base class of model family plugs.

    Attributes:
        name: the family (``model.family``, recorded in model.json).
        config_class: the family's schema (types a user's YAML that names this class in ``_target_``).
        registry: every family class by name (filled as subclasses are defined).
        capabilities: what every model of the family can do (see :mod:`lmtrain.models.capabilities`);
            :meth:`model_capabilities` and :meth:`config_capabilities` refine it where the config decides.
        tagger_encoder: the encoder a tagging head gets unless ``task.encoder`` says (``linear``,
            or ``bilstm``: a task biLSTM over the features).
        chosen_without_init: whether `lmtrain finetune` without ``init=`` may pick a run of this family
            (the newest whose capabilities fit the task).
        packs: False for a family whose models never pack padded batches (``trainer.packing``), so
            ``trainer.packing=on`` is refused before a run starts; None (the default: Transformers, a family
            of your own) when the built model tells, by whether a backbone of it packs.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = ModelConfig
    registry: ClassVar[dict[str, type[ModelFamily]]] = {}
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.WEIGHTS_EXPORT})
    tagger_encoder: ClassVar[str] = "linear"
    chosen_without_init: ClassVar[bool] = True
    packs: ClassVar[bool | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            ModelFamily.registry[cls.name] = cls

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg

    def build(self, tokenizer: TextTokenizer, head_names: Sequence[str], max_seq_len: int) -> NamedHeads:
        """A freshly initialised model (a :class:`NamedHeads` module) for ``tokenizer``'s vocabulary with the
        pretraining heads ``head_names``."""
        raise NotImplementedError

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> NamedHeads:
        """The (untrained) model a checkpoint's ``model.json`` describes; its weights are loaded after."""
        raise NotImplementedError

    def next_commands(self, run: Path) -> list[str]:
        """What a user runs next with a model of this family (besides the objective's suggestions)."""
        return []

    def config_capabilities(self) -> frozenset[Capability]:
        """What the model this config builds can do (default: the family's :attr:`capabilities`)."""
        return self.capabilities

    @classmethod
    def model_capabilities(cls, meta: Mapping[str, Any]) -> frozenset[Capability]:
        """What the model a checkpoint's ``model.json`` describes can do (default: :attr:`capabilities`)."""
        return cls.capabilities

    @classmethod
    def task_backbone(cls, model: nn.Module, meta: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The weights of a loaded checkpoint that a fine-tuning run starts from (default: all of them).

        Raises:
            UserError: a checkpoint that is no backbone to fine-tune (``where`` names it).
        """
        return model.state_dict()

    @classmethod
    def task_model(
        cls,
        spec: ModelSpec,
        state: Mapping[str, Any] | None,
        head: str | None,
        description: Mapping[str, Any],
        source: str,
    ) -> NamedHeads:
        """The model a fine-tuning run trains: ``spec``'s backbone with ``state``'s weights (None: random).

        The default serves a family with a causal LM head and no task head of its own: ``head`` None
        (task=generation) keeps the backbone and its ``lm`` head; a task head is refused.

        Args:
            spec: the backbone's sizes.
            state: the pretrained weights (``backbone.*``, ``heads.*``), or None.
            head: the task head's name, or None for the language-model head ``lm``.
            description: the head's ``kind``, ``n_classes``, ``dropout`` (and a tagger's ``encoder`` ...).
            source: where the weights came from (for messages).
        Raises:
            UserError: the family has no such head, or weights that do not fit.
        """
        if head is not None:
            raise UserError(
                f"a {cls.name} model has no {description.get('kind')} head for this task; fine-tune a "
                f"model with {Capability.TOKEN_FEATURES.words} (e.g. `lmtrain pretrain model=bert`), "
                f"or give the {cls.name} family a task_model that builds one."
            )
        model = cls.from_meta({"family": cls.name, "spec": spec.to_dict(), "heads": ["lm"], "task_heads": {}})
        if state is not None:
            load_backbone_weights(
                model, {k: v for k, v in state.items() if k.startswith(("backbone.", "heads.lm."))}, source
            )
        return model

    @classmethod
    def freeze(cls, model: nn.Module, freeze_backbone: bool | None, freeze_layers: int) -> int:
        """Stop gradients to the backbone as ``finetune.freeze_backbone`` / ``freeze_layers`` ask.

        ``freeze_backbone`` None is the family's usual way (default: tuned whole); the default knows no
        layers, so ``freeze_layers`` is refused.
        Returns:
            The number of frozen parameters (tensors).
        """
        if freeze_layers:
            raise UserError(
                f"finetune.freeze_layers={freeze_layers} applies to Transformer backbones; a {cls.name} "
                "backbone is frozen whole (finetune.freeze_backbone=true) or tuned whole."
            )
        return freeze_modules([model.get_submodule("backbone")], "the whole backbone") if freeze_backbone else 0

    @classmethod
    def default_head_lr(cls, freeze_backbone: bool | None) -> float | None:
        """The task head's learning rate when ``finetune.head_lr`` is unset (None: ``optim.lr``)."""
        return None

    @staticmethod
    def of(meta: Mapping[str, Any]) -> type[ModelFamily]:
        """The family of a checkpoint's ``model.json`` (a family of your own imported from ``family_target``)."""
        return ModelFamily.named(meta.get("family"), meta.get("family_target"))

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
            raise UserError(
                f"model family {name!r} is not known here (known: {', '.join(sorted(ModelFamily.registry))}); "
                "a family of your own must be importable (on PYTHONPATH) and named by the model config's "
                "_target_."
            )
        return ModelFamily.registry[name]


def _check_positions(max_seq_len: int, max_positions: int) -> None:
    if max_seq_len > max_positions:
        raise UserError(
            f"data.max_seq_len={max_seq_len} is longer than model.max_positions={max_positions}; "
            "lower the first or raise the second."
        )


class TransformerFamily(ModelFamily):
    """BERT, RoBERTa and GPT-2: one Transformer backbone, presets set its switches.

    A causal one (GPT) has a causal LM head; a bidirectional one (BERT, RoBERTa) a masked LM head and
    token features for task heads. Both map to a Hugging Face architecture.
    """

    name = "transformer"
    config_class = TransformerConfig
    cfg: TransformerConfig  # a family is built from its own config_class (the model config's _target_ names it)
    capabilities = frozenset({Capability.WEIGHTS_EXPORT, Capability.HF_EXPORT})

    @staticmethod
    def _by_attention(causal: bool) -> frozenset[Capability]:
        return frozenset({Capability.CAUSAL_LM} if causal else {Capability.MASKED_LM, Capability.TOKEN_FEATURES})

    def config_capabilities(self) -> frozenset[Capability]:
        """Causal (``model.causal``) or bidirectional capabilities, and Hugging Face export."""
        return self.capabilities | self._by_attention(self.cfg.causal)

    @classmethod
    def model_capabilities(cls, meta: Mapping[str, Any]) -> frozenset[Capability]:
        """As :meth:`config_capabilities`, from the spec (a Hugging Face folder's is known once it is read)."""
        spec = meta.get("spec")
        return cls.capabilities if spec is None else cls.capabilities | cls._by_attention(bool(spec.get("causal")))

    def build(self, tokenizer: TextTokenizer, head_names: Sequence[str], max_seq_len: int) -> NamedHeads:
        """A :class:`LanguageModel` with the given heads."""
        from lmtrain.models.language_model import LanguageModel
        from lmtrain.models.spec import resolve_spec

        spec = resolve_spec(self.cfg, tokenizer.vocab_size, tokenizer.id("pad"))
        _check_positions(max_seq_len, spec.max_positions)
        return LanguageModel(spec, tuple(head_names))

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> NamedHeads:
        """A :class:`LanguageModel` with the checkpoint's pretraining and task heads."""
        from lmtrain.models.language_model import LanguageModel
        from lmtrain.models.spec import TransformerSpec

        return LanguageModel(TransformerSpec.from_dict(meta["spec"]), meta["heads"], meta.get("task_heads"))

    @classmethod
    def task_model(
        cls,
        spec: ModelSpec,
        state: Mapping[str, Any] | None,
        head: str | None,
        description: Mapping[str, Any],
        source: str,
    ) -> NamedHeads:
        """A :class:`LanguageModel` with the backbone's weights and a new task head (or its ``lm`` head).

        A classifier's dense layer starts from BERT's pretrained pooler (the NSP head's dense layer) when
        the backbone has one, as Hugging Face's BertForSequenceClassification does.
        """
        return transformer_task_model(spec, state, head, description, source)

    @classmethod
    def freeze(cls, model: nn.Module, freeze_backbone: bool | None, freeze_layers: int) -> int:
        """The whole backbone, or its embeddings and first ``freeze_layers`` blocks; None: tuned whole.

        A language-model head tied to the token embedding is frozen with it.
        """
        return freeze_transformer(model, freeze_backbone, freeze_layers)

    def next_commands(self, run: Path) -> list[str]:
        """Export to a Hugging Face folder."""
        return [
            command("export", override("ckpt", run), override("out", f"{run}-hf"))
        ]  # beside the run: export writes into no run folder


class ElmoFamily(ModelFamily):
    """ELMo's biLM: character CNN (or token table) + forward and backward LSTMs.

    Its features serve task heads through a frozen biLM and a scalar mix (as in the paper), so it is
    fine-tuned only when ``init=`` names it.
    """

    name = "elmo"
    config_class = ElmoConfig
    cfg: ElmoConfig  # a family is built from its own config_class (the model config's _target_ names it)
    capabilities = frozenset({Capability.WEIGHTS_EXPORT, Capability.BIDIRECTIONAL_LM, Capability.TOKEN_FEATURES})
    tagger_encoder = "bilstm"  # ELMo's task biLSTM, as in the paper
    chosen_without_init = False
    packs = False  # LSTMs
    head_lr = 1.0e-2  # trained from scratch on fixed features: a larger step than a tuned Transformer's optim.lr

    def build(self, tokenizer: TextTokenizer, head_names: Sequence[str], max_seq_len: int) -> NamedHeads:
        """The biLM, its character table spelling ``tokenizer``'s vocabulary."""
        from lmtrain.models.char_cnn import tokenizer_strings
        from lmtrain.models.elmo import build_elmo, resolve_elmo_spec

        spec = resolve_elmo_spec(self.cfg, tokenizer.vocab_size, tokenizer.id("pad"))
        return build_elmo(spec, tokenizer_strings(tokenizer))

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> NamedHeads:
        """The biLM, or a fine-tuned ELMo-feature task model; the char table is a buffer the weights fill in."""
        from lmtrain.models.elmo import ElmoLanguageModel, ElmoSpec
        from lmtrain.models.elmo_features import ElmoTaskModel

        spec = ElmoSpec.from_dict(meta["spec"])
        if meta.get("task_heads"):
            return ElmoTaskModel(spec, meta["task_heads"])
        return ElmoLanguageModel(spec, meta["heads"])

    @classmethod
    def task_backbone(cls, model: nn.Module, meta: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The pretrained biLM's weights; a fine-tuned ELMo task model is refused."""
        if meta.get("task_heads"):
            raise UserError(
                f"{where} is a fine-tuned ELMo tagger or classifier; start from the pretrained biLM "
                "(init=<the `lmtrain pretrain model=elmo` run>)."
            )
        return model.state_dict()

    @classmethod
    def task_model(
        cls,
        spec: ModelSpec,
        state: Mapping[str, Any] | None,
        head: str | None,
        description: Mapping[str, Any],
        source: str,
    ) -> NamedHeads:
        """ELMo features (the pretrained biLM plus a scalar mix) under the task's head.

        A classifier pools the mean of the tokens' features: ELMo has no [CLS] trained to summarise.
        """
        from lmtrain.models.elmo import ElmoSpec
        from lmtrain.models.elmo_features import build_elmo_task_model

        assert isinstance(spec, ElmoSpec), "a backbone's spec is its own family's"
        if head is None:
            raise UserError(f"{source} is an ELMo biLM, whose features serve tagging and classification only.")
        kind = "mean_pooled_classifier" if description["kind"] == "pooled_classifier" else description["kind"]
        return build_elmo_task_model(spec, {head: {**description, "kind": kind}}, state)

    @classmethod
    def freeze(cls, model: nn.Module, freeze_backbone: bool | None, freeze_layers: int) -> int:
        """The biLM frozen whole (None: the paper's way, only the scalar mix and the head learn) or tuned whole."""
        if freeze_layers:
            raise UserError(
                f"finetune.freeze_layers={freeze_layers} applies to Transformer backbones; an ELMo "
                "biLM is frozen whole (the default) or tuned whole (finetune.freeze_backbone=false)."
            )
        if freeze_backbone is False:
            log.info("ELMo: the biLM is fine-tuned with the scalar mix and the head")
            return 0
        from lmtrain.models.elmo_features import ElmoTaskModel

        assert isinstance(model, ElmoTaskModel), "the family's task_model builds an ElmoTaskModel"
        log.info("frozen: the ELMo biLM (the scalar mix and the head learn)")
        return model.backbone.freeze_bilm()

    @classmethod
    def default_head_lr(cls, freeze_backbone: bool | None) -> float | None:
        """:attr:`head_lr` over a frozen biLM; one rate (None) for a tuned one."""
        if freeze_backbone is False:
            return None
        log.info("ELMo: the task head learns at finetune.head_lr=%g (set finetune.head_lr to change it)", cls.head_lr)
        return cls.head_lr


class AlbefFamily(ModelFamily):
    """ALBEF: a ViT, a text encoder and a fusion encoder, with momentum copies."""

    name = "albef"
    config_class = AlbefConfig
    cfg: AlbefConfig  # a family is built from its own config_class (the model config's _target_ names it)
    capabilities = frozenset({Capability.WEIGHTS_EXPORT, Capability.IMAGE_TEXT})
    packs = False  # its encoders train unpacked

    def build(self, tokenizer: TextTokenizer, head_names: Sequence[str], max_seq_len: int) -> NamedHeads:
        """An :class:`AlbefModel` for captions of at most ``max_seq_len`` tokens."""
        from lmtrain.models.albef import AlbefModel, resolve_albef_spec

        spec = resolve_albef_spec(self.cfg, tokenizer.vocab_size, tokenizer.id("pad"))
        _check_positions(max_seq_len, spec.text.max_positions)
        return AlbefModel(spec, tuple(head_names))

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> NamedHeads:
        """An :class:`AlbefModel` with the checkpoint's heads."""
        from lmtrain.models.albef import AlbefModel, AlbefSpec

        return AlbefModel(AlbefSpec.from_dict(meta["spec"]), meta["heads"])
