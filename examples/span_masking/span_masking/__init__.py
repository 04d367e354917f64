"""SpanBERT-style span masking as a pretraining objective of your own, plugged into lmtrain without a fork."""

from span_masking.objective import SpanMaskingConfig, SpanMaskingObjective
from span_masking.spans import SpanMasking

__all__ = ["SpanMasking", "SpanMaskingConfig", "SpanMaskingObjective"]
