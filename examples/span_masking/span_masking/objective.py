"""The span-masking objective as an lmtrain plug: a schema and a subclass of lmtrain's masked-LM objective.

Only what differs from RoBERTa's masked LM is here: whole-word spans are drawn afresh on every
pass (dynamic), and the span-length settings. The loss, heads, baseline and data preparation are
lmtrain's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmtrain.config import MaskedLMConfig
from lmtrain.config.checks import check_range
from lmtrain.data.pretraining import masking_spec
from lmtrain.objectives.text_objectives import MaskedLMObjective
from span_masking.spans import SpanMasking


@dataclass
class SpanMaskingConfig(MaskedLMConfig):
    """`objective=span_mlm`: the masked-LM settings plus the span-length distribution."""

    _target_: str = "span_masking.SpanMaskingObjective"
    name: str = "span_mlm"
    masking: str = "dynamic"  # spans are drawn every time a sequence is seen
    whole_word: bool = True  # spans are made of whole words
    span_p: float = 0.2  # parameter of the geometric span-length distribution Geo(p)
    max_span: int = 10  # longest span, in words (SpanBERT clips at 10)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "span_p", 0, 1, low_open=True)
        check_range(self, "max_span", 1)


class SpanMaskingObjective(MaskedLMObjective):
    """SpanBERT's span masking (without its span-boundary objective) for BERT and RoBERTa backbones."""

    config_class = SpanMaskingConfig

    def static_masking(self, tokenizer):
        """None: spans are drawn on every pass."""
        return None

    def corruption(self, tokenizer):
        """Span masking with the objective's probabilities and span lengths."""
        return SpanMasking(masking_spec(self.cfg, tokenizer), p=self.cfg.span_p, max_span=self.cfg.max_span)
