"""What a model can do, in the words commands and objectives ask for: never a family's name.

A model family (:class:`lmtrain.models.families.ModelFamily`) says which of these a model of it has
(``capabilities``, from its config or its checkpoint's ``model.json``); a command loads a checkpoint
for what it needs (``load_checkpoint(..., needs=...)``) and an objective states the one it trains
(``PretrainingObjective.needs``). A family of your own that has ``CAUSAL_LM`` works with ``objective=clm``,
``lmtrain evaluate``, ``generate`` and ``finetune task=generation`` alike.

What each capability promises of the model module (beyond :class:`lmtrain.models.protocol.TrainedModel`):

- ``CAUSAL_LM``: ``spec.causal`` is True and ``spec.max_positions`` an int (or None: no limit);
  ``backbone(input_ids)`` gives (B, T, D) states where position t sees tokens <= t only; the ``lm``
  head is a :class:`lmtrain.models.heads.CausalLMHead` (``transform``, ``weight``, ``bias``). A backbone
  with ``new_cache`` is decoded with a key/value cache, any other by running the prefix again.
- ``MASKED_LM``: bidirectional states and an ``mlm`` head (logits over the vocabulary).
- ``BIDIRECTIONAL_LM``: ELMo-style forward and backward language models over one ``lm`` softmax.
- ``TOKEN_FEATURES``: bidirectional features per token that a task head (tagging, classification)
  reads; the family's ``task_model`` puts a task head on them.
- ``IMAGE_TEXT``: image and text encoders with a fusion encoder (ALBEF's retrieval).
- ``HF_EXPORT``: a Hugging Face architecture to export to (``lmtrain export format=hf``).
- ``WEIGHTS_EXPORT``: its full weights as one safetensors checkpoint (``format=safetensors``; every family).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from enum import Enum


class Capability(str, Enum):
    """One thing a model can do (see the module's docstring for what each promises)."""

    TOKEN_FEATURES = "token_features"
    CAUSAL_LM = "causal_lm"
    MASKED_LM = "masked_lm"
    BIDIRECTIONAL_LM = "bidirectional_lm"
    IMAGE_TEXT = "image_text"
    HF_EXPORT = "hf_export"
    WEIGHTS_EXPORT = "weights_export"

    @property
    def words(self) -> str:
        """The capability in a sentence (``a causal LM head``)."""
        return _WORDS[self]

    @property
    def example(self) -> str:
        """The command that makes a model with it (for the fix in an error message)."""
        return _EXAMPLES[self]

    def __str__(self) -> str:
        return self.value


_WORDS = {
    Capability.TOKEN_FEATURES: "bidirectional token features for task heads",
    Capability.CAUSAL_LM: "a causal LM head (next-token prediction)",
    Capability.MASKED_LM: "a masked LM head",
    Capability.BIDIRECTIONAL_LM: "forward and backward language models (a biLM)",
    Capability.IMAGE_TEXT: "image-text encoders",
    Capability.HF_EXPORT: "a Hugging Face architecture to export to",
    Capability.WEIGHTS_EXPORT: "weights to export as safetensors",
}
_EXAMPLES = {
    Capability.TOKEN_FEATURES: "lmtrain pretrain model=bert",
    Capability.CAUSAL_LM: "lmtrain pretrain model=gpt",
    Capability.MASKED_LM: "lmtrain pretrain model=bert",
    Capability.BIDIRECTIONAL_LM: "lmtrain pretrain model=elmo",
    Capability.IMAGE_TEXT: "lmtrain pretrain model=albef",
    Capability.HF_EXPORT: "lmtrain pretrain model=bert",
    Capability.WEIGHTS_EXPORT: "lmtrain pretrain",
}

# what `lmtrain evaluate` measures: a language model's held-out loss of any of these kinds
LANGUAGE_MODELS = (Capability.CAUSAL_LM, Capability.MASKED_LM, Capability.BIDIRECTIONAL_LM)


def in_words(capabilities: Iterable[Capability]) -> str:
    """``a, b and c`` (``nothing a command asks for`` for none), in the vocabulary's order."""
    words = [c.words for c in Capability if c in set(capabilities)]
    if not words:
        return "nothing a command asks for"
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def missing(have: Collection[Capability], needs: Capability | Iterable[Capability]) -> tuple[Capability, ...]:
    """The capabilities asked for when ``have`` has none of them (``needs``: one, or alternatives); else ()."""
    wanted = (needs,) if isinstance(needs, Capability) else tuple(needs)
    return () if not wanted or any(c in have for c in wanted) else wanted


def either(needs: Iterable[Capability]) -> str:
    """``a or b``: alternatives in a sentence."""
    words = [c.words for c in needs]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
