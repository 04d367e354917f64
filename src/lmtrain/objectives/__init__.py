"""Objectives turn (model, batch) into a loss and metric sums; they hold no weights.

The pretraining objectives are plugs (:mod:`lmtrain.objectives.plug`): ``objective._target_`` names
the class that owns an objective's examples, loss, baselines and main metric.
"""

from __future__ import annotations

from lmtrain.objectives.base import Objective, ObjectiveOutput
from lmtrain.objectives.bidirectional_lm import BidirectionalLM
from lmtrain.objectives.causal_lm import CausalLM
from lmtrain.objectives.completion import CompletionLM
from lmtrain.objectives.masked_lm import MaskedLM
from lmtrain.objectives.sequence_classification import SequenceClassification
from lmtrain.objectives.token_classification import TokenClassification

__all__ = [
    "Objective",
    "ObjectiveOutput",
    "MaskedLM",
    "CausalLM",
    "BidirectionalLM",
    "CompletionLM",
    "SequenceClassification",
    "TokenClassification",
]
