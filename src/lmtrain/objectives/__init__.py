"""Objectives turn (model, batch) into a loss and metric sums; they hold no weights."""

from __future__ import annotations

from lmtrain.errors import UserError
from lmtrain.objectives.base import Objective, ObjectiveOutput
from lmtrain.objectives.bidirectional_lm import BidirectionalLM
from lmtrain.objectives.causal_lm import CausalLM
from lmtrain.objectives.completion import CompletionLM
from lmtrain.objectives.masked_lm import MaskedLM
from lmtrain.objectives.sequence_classification import SequenceClassification
from lmtrain.objectives.token_classification import TokenClassification


def build_objective(name: str) -> Objective:
    """The pretraining objective called ``name`` (mlm_nsp, mlm, clm, bilm)."""
    if name == "mlm_nsp":
        return MaskedLM(next_sentence=True)
    if name == "mlm":
        return MaskedLM(next_sentence=False)
    if name == "clm":
        return CausalLM()
    if name == "bilm":
        return BidirectionalLM()
    raise UserError(f"objective={name} is not a pretraining objective; choose mlm_nsp, mlm, clm or bilm.")


__all__ = ["Objective", "ObjectiveOutput", "build_objective", "MaskedLM", "CausalLM", "BidirectionalLM", "CompletionLM",
           "SequenceClassification", "TokenClassification"]
