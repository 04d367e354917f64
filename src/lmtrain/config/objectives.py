"""Schemas of the `objective` group: one per pretraining objective, each extending :class:`ObjectiveConfig`.

``_target_`` names the objective's plug (:class:`lmtrain.objectives.plug.PretrainingObjective`),
which owns its examples, its loss, its baselines and its main metric.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmtrain.config.checks import check_range


@dataclass
class ObjectiveConfig:
    """What every pretraining objective has."""

    _target_: str = ""  # the objective's plug class (set by each objective's schema)
    name: str = ""  # shown in run listings and recorded in model.json


@dataclass
class MaskingConfig(ObjectiveConfig):
    """A masked-LM objective: which tokens are corrupted, and how."""

    masking: str = "static"  # static (drawn once in preprocessing) | dynamic (new mask each epoch)
    mask_prob: float = 0.15  # share of tokens selected for prediction
    mask_token_prob: float = 0.8  # of the selected: replaced by [MASK]
    random_token_prob: float = 0.1  # of the selected: replaced by a random token (rest unchanged)
    whole_word: bool = False  # select whole words (by the tokenizer's word ids), not sub-words

    def __post_init__(self) -> None:
        check_range(self, "mask_prob", 0, 1, low_open=True)
        check_range(self, "mask_token_prob", 0, 1)
        check_range(
            self,
            "random_token_prob",
            0,
            round(1 - self.mask_token_prob, 12),
            reason=f"[MASK] and random replacements share the selected tokens; mask_token_prob={self.mask_token_prob}",
        )
        if self.masking not in ("static", "dynamic"):
            from lmtrain.config.checks import ConfigRangeError

            raise ConfigRangeError("masking", "static or dynamic", self.masking)


@dataclass
class MaskedLMConfig(MaskingConfig):
    """BERT's masked LM, with next-sentence prediction (mlm_nsp) or without (mlm, RoBERTa)."""

    _target_: str = "lmtrain.objectives.text_objectives.MaskedLMObjective"
    name: str = "mlm"
    next_sentence: bool = False  # predict whether segment B follows segment A (BERT's NSP)


@dataclass
class CausalLMConfig(ObjectiveConfig):
    """GPT's next-token prediction."""

    _target_: str = "lmtrain.objectives.text_objectives.CausalLMObjective"
    name: str = "clm"


@dataclass
class BidirectionalLMConfig(ObjectiveConfig):
    """ELMo's forward and backward language models, one softmax shared by both."""

    _target_: str = "lmtrain.objectives.text_objectives.BidirectionalLMObjective"
    name: str = "bilm"


@dataclass
class ImageTextConfig(MaskingConfig):
    """ALBEF's losses: image-text contrastive, matching with hard negatives, MLM conditioned on the image."""

    _target_: str = "lmtrain.objectives.image_text_objective.ImageTextPretraining"
    name: str = "albef"  # the objective's own name (objective=albef), not a test of the model family
    masking: str = "dynamic"
    itc_weight: float = 1.0  # image-text contrastive loss
    itm_weight: float = 1.0  # image-text matching loss
    mlm_weight: float = 1.0  # masked LM conditioned on the image
    alpha: float = 0.4  # weight of the momentum model's soft targets (ramped up over the first epoch); 0 = off
    hard_negatives: bool = True  # ITM negatives sampled by contrastive similarity (false = uniformly)
    rerank_k: int = 16  # evaluation re-ranks each query's k best contrastive candidates with ITM (0 = off)
    queue_start: int = 0  # optimizer steps before queued features join the contrastive loss (0 = at once)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("itc_weight", "itm_weight", "mlm_weight", "rerank_k", "queue_start"):
            check_range(self, name, 0)
        check_range(self, "alpha", 0, 1)


# objective schema name in the ConfigStore (group schema/objective) -> schema
OBJECTIVE_SCHEMAS = {
    "masked_lm": MaskedLMConfig,
    "causal_lm": CausalLMConfig,
    "bidirectional_lm": BidirectionalLMConfig,
    "image_text": ImageTextConfig,
}
