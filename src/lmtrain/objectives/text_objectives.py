"""The text pretraining objectives as plugs: BERT's MLM (+ NSP), RoBERTa's MLM, GPT's causal LM, ELMo's biLM.

Each says which examples it trains on (:class:`lmtrain.data.pretraining.ExampleRecipe`), how they
are corrupted, which loss and heads it uses, and its baseline. :class:`TextPretraining` does the
rest (the cached corpus, the datasets), so an objective of your own on text is a small subclass.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
from omegaconf import OmegaConf
from torch.utils.data import Subset

from lmtrain.config.commands import PretrainConfig
from lmtrain.config.data import TextDataConfig
from lmtrain.config.objectives import BidirectionalLMConfig, CausalLMConfig, MaskedLMConfig, ObjectiveConfig
from lmtrain.data.baselines import majority_token_accuracy, unigram_perplexity
from lmtrain.data.collate import PadCollator
from lmtrain.data.datasets import Corruption, PretrainingDataset
from lmtrain.data.masking import MaskingSpec, TokenMasking
from lmtrain.data.pretraining import (
    ExampleRecipe,
    PretrainingData,
    PretrainingPreparation,
    masking_spec,
    prepare_pretraining_data,
    read_tokenizer_text,
)
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.models.capabilities import Capability
from lmtrain.objectives.base import Objective
from lmtrain.objectives.bidirectional_lm import BidirectionalLM
from lmtrain.objectives.causal_lm import CausalLM
from lmtrain.objectives.masked_lm import MaskedLM
from lmtrain.objectives.plug import PretrainingObjective, PretrainingSets
from lmtrain.shell_words import command, override

# examples a baseline is estimated on: plenty for unigram statistics, and memory stays flat
BASELINE_SEQUENCES = 50_000


def _sample(dataset) -> list[int]:
    """Evenly spread indices of at most ``BASELINE_SEQUENCES`` examples (all of a smaller set)."""
    if len(dataset) <= BASELINE_SEQUENCES:
        return list(range(len(dataset)))
    return np.linspace(0, len(dataset) - 1, BASELINE_SEQUENCES).astype(int).tolist()


def prepare_on_every_node(cfg: PretrainConfig, context: Any, recipe: ExampleRecipe) -> tuple[PretrainingData, dict]:
    """The examples of a job under ``torchrun``, alike on every rank whether or not the nodes share a disk.

    Global rank 0 trains (or loads) the tokenizer and sends its text to every rank; the first process
    of each node builds the examples from that exact tokenizer into its own ``data.cache_dir`` (once
    in all, under a lock, when the nodes share it), and the node's other processes then read them.

    Returns:
        The data, and the digests of its example stores (checked across ranks before training).
    """
    preparation = PretrainingPreparation(cfg.data, cfg.tokenizer)

    def resolve() -> tuple[TextTokenizer, str]:
        tokenizer, path = preparation.tokenizer()
        return tokenizer, read_tokenizer_text(path)

    tokenizer, text = context.share_tokenizer(resolve)
    with context.node_main_first():
        data = preparation.examples(tokenizer, text, recipe)
    return data, {"train examples": data.train.content_digest(), "held-out examples": data.eval.content_digest()}


class TextPretraining(PretrainingObjective):
    """An objective on a text corpus: subclasses set ``example_format`` and the loss.

    Attributes:
        example_format: sentence_pairs | sentence_blocks | token_stream (see ``data.pretraining``).
    """

    example_format: ClassVar[str] = "token_stream"
    data_config: ClassVar[type] = TextDataConfig

    def static_masking(self, tokenizer: TextTokenizer) -> MaskingSpec | None:
        """The mask drawn once at preprocessing, or None (the default: none, or drawn per use)."""
        return None

    def repeats_examples(self) -> bool:
        """Whether ``data.dupe_factor`` copies of the training data each get their own draw (pairs or masks)."""
        return False

    def unread_data_keys(self) -> dict[str, str]:
        """The ``data`` keys that this objective's examples do not use -> who reads them, in words."""
        readers = {
            "short_seq_prob": (
                self.example_format == "sentence_pairs",
                "by sentence-pair examples (objective=mlm_nsp: BERT's next-sentence prediction)",
            ),
            "packing": (
                self.example_format == "sentence_blocks",
                "by sentence-block examples (objective=mlm: RoBERTa's masked LM)",
            ),
            "dupe_factor": (
                self.repeats_examples(),
                "by sentence pairs or statically masked examples (objective=mlm_nsp, or objective.masking=static)",
            ),
        }
        return {key: words for key, (read, words) in readers.items() if not read}

    def corruption(self, tokenizer: TextTokenizer) -> Corruption | None:
        """What corrupts an example every time it is drawn (dynamic masking), or None."""
        return None

    def prepare(self, cfg: PretrainConfig, context: Any) -> PretrainingSets:
        """The cached corpus of ``cfg.data`` as training and held-out datasets (see :func:`prepare_on_every_node`)."""
        data, digests = (
            prepare_on_every_node(cfg, context, self)
            if context.dist.enabled
            else (prepare_pretraining_data(cfg.data, cfg.tokenizer, self), {})
        )
        corrupt = self.corruption(data.tokenizer)
        train_set = PretrainingDataset(data.train, corrupt, seed=cfg.trainer.seed)
        eval_set = PretrainingDataset(data.eval, corrupt, seed=cfg.trainer.seed + 1)
        return PretrainingSets(
            data.tokenizer,
            train_set,
            eval_set,
            PadCollator(data.tokenizer.id("pad")),
            description=f"{len(train_set)} train / {len(eval_set)} held-out sequences",
            digests=digests,
        )

    def loss(self, sets: PretrainingSets | None, steps_per_epoch: int) -> Objective:
        """The objective the Trainer calls on every batch. A text loss reads neither: `lmtrain evaluate` rebuilds
        it from a checkpoint with no training sets (``sets=None``)."""
        raise NotImplementedError

    def evaluation_sets(self, data: Any, tokenizer: TextTokenizer, seed: int) -> tuple[PretrainingDataset, ...]:
        """(train, held-out) datasets of prepared ``data`` as `lmtrain evaluate` reads them (fixed masks)."""
        corrupt = self.corruption(tokenizer)
        return PretrainingDataset(data.train, corrupt, seed=seed), PretrainingDataset(data.eval, corrupt, seed=seed)

    def baselines(self, sets: PretrainingSets) -> dict[str, float]:
        """Unigram perplexity of the held-out tokens (language models)."""
        ids = lambda ds: [ds.store[i]["input_ids"] for i in _sample(ds)]  # noqa: E731
        return {
            "baseline/unigram_ppl": unigram_perplexity(
                ids(sets.train_set), ids(sets.eval_set), sets.tokenizer.vocab_size
            )
        }


class MaskedLMObjective(TextPretraining):
    """BERT's masked LM with next-sentence prediction (``next_sentence: true``), or RoBERTa's without."""

    config_class = MaskedLMConfig
    cfg: MaskedLMConfig  # an objective is built from its own config_class (the objective config's _target_ names it)
    needs = Capability.MASKED_LM

    @property
    def example_format(self) -> str:  # type: ignore[override]
        """Sentence pairs for next-sentence prediction, else blocks of whole sentences."""
        return "sentence_pairs" if self.cfg.next_sentence else "sentence_blocks"

    def min_seq_len(self) -> tuple[int, str]:
        """Room for the special tokens and a token to mask (in each sentence, with NSP)."""
        if self.cfg.next_sentence:
            return 5, "[CLS] A [SEP] B [SEP]: 3 special tokens and at least one token in each sentence"
        return 3, "[CLS] ... [SEP]: 2 special tokens and at least one token to mask"

    def _spec(self, tokenizer: TextTokenizer) -> MaskingSpec:
        return masking_spec(self.cfg, tokenizer)

    def static_masking(self, tokenizer: TextTokenizer) -> MaskingSpec | None:
        """BERT's masks, drawn once (``objective.masking=static``)."""
        return self._spec(tokenizer) if self.cfg.masking == "static" else None

    def repeats_examples(self) -> bool:
        """Sentence pairs are drawn anew for each copy; static masks too."""
        return self.cfg.next_sentence or self.cfg.masking == "static"

    def corruption(self, tokenizer: TextTokenizer) -> Corruption | None:
        """RoBERTa's masks, drawn anew every epoch (``objective.masking=dynamic``)."""
        return TokenMasking(self._spec(tokenizer)) if self.cfg.masking == "dynamic" else None

    def head_names(self) -> tuple[str, ...]:
        """The MLM decoder, and the NSP classifier when predicting the next sentence."""
        return ("mlm", "nsp") if self.cfg.next_sentence else ("mlm",)

    def loss(self, sets: PretrainingSets | None, steps_per_epoch: int) -> Objective:
        """Cross-entropy on the masked positions (+ NSP)."""
        return MaskedLM(next_sentence=self.cfg.next_sentence)

    def baselines(self, sets: PretrainingSets) -> dict[str, float]:
        """Accuracy of always predicting the most frequent masked token."""
        return {
            "baseline/mlm_majority_acc": majority_token_accuracy(
                Subset(sets.train_set, _sample(sets.train_set)), Subset(sets.eval_set, _sample(sets.eval_set))
            )
        }

    def next_commands(self, run: Path) -> list[str]:
        """Evaluate, fill masks, fine-tune."""
        return [
            command("evaluate", override("ckpt", run)),
            command("generate", override("ckpt", run), "prompt='The [MASK] spread across the hills.'"),
            command("finetune", "task=ner", override("init", run)),
        ]


class CausalLMObjective(TextPretraining):
    """GPT's next-token prediction on blocks cut from the document stream."""

    config_class = CausalLMConfig
    needs = Capability.CAUSAL_LM
    example_format = "token_stream"

    def head_names(self) -> tuple[str, ...]:
        """The LM head."""
        return ("lm",)

    def loss(self, sets: PretrainingSets | None, steps_per_epoch: int) -> Objective:
        """Next-token cross-entropy."""
        return CausalLM()

    def next_commands(self, run: Path) -> list[str]:
        """Evaluate, generate, fine-tune."""
        return [
            command("evaluate", override("ckpt", run)),
            command("generate", override("ckpt", run), "prompt='The fire'"),
            command("finetune", "task=generation", override("init", run)),
        ]


class BidirectionalLMObjective(TextPretraining):
    """ELMo's forward and backward LMs on the same blocks as GPT."""

    config_class = BidirectionalLMConfig

    needs = Capability.BIDIRECTIONAL_LM
    example_format = "token_stream"

    def head_names(self) -> tuple[str, ...]:
        """The softmax both directions share."""
        return ("lm",)

    def loss(self, sets: PretrainingSets | None, steps_per_epoch: int) -> Objective:
        """Forward next-token plus backward previous-token cross-entropy."""
        return BidirectionalLM()

    def next_commands(self, run: Path) -> list[str]:
        """Evaluate, then ELMo's features in a task model."""
        return [command("evaluate", override("ckpt", run)), command("finetune", "task=ner", override("init", run))]


# objective name -> its schema, for checkpoints written before model.json kept the objective's config
_EARLIER_CHECKPOINTS: dict[str, Callable[[], ObjectiveConfig]] = {
    "mlm_nsp": lambda: MaskedLMConfig(name="mlm_nsp", next_sentence=True, masking="static"),
    "mlm": lambda: MaskedLMConfig(name="mlm", masking="dynamic"),
    "clm": CausalLMConfig,
    "bilm": BidirectionalLMConfig,
}


def objective_from_meta(meta: dict[str, Any], key: str = "ckpt") -> TextPretraining:
    """The text objective a checkpoint was pretrained with, rebuilt from its ``model.json``.

    Raises:
        UserError: a checkpoint that was not pretrained on text (a fine-tuned or ALBEF one).
    """
    from lmtrain.plugs import plug_class

    stored = meta.get("objective_config")
    earlier = _EARLIER_CHECKPOINTS.get(str(meta.get("objective")))
    cls: type | None = None
    if stored:
        cls = plug_class(stored, "objective", PretrainingObjective)
    elif earlier is not None:
        cfg = earlier()
        cls = plug_class(cfg._target_, "objective", PretrainingObjective)
    if cls is None or not issubclass(cls, TextPretraining):
        raise UserError(
            f"{key} was trained with objective {meta.get('objective')!r}, not a text pretraining objective; "
            "evaluate a pretraining checkpoint (BERT, RoBERTa, GPT, ELMo)."
        )
    if stored:
        # to_object gives the config_class instance that structured() made the node of (OmegaConf types it loosely)
        cfg = cast(
            ObjectiveConfig, OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls.config_class), stored))
        )
    return cls(cfg)
