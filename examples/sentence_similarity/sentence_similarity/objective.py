"""Squared error of the predicted scores; Pearson and Spearman correlation with the gold scores."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from lmtrain.objectives.base import Objective, ObjectiveOutput, ratio


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant (an untrained model may predict one value)."""
    x, y = x - x.mean(), y - y.mean()
    scale = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / scale) if scale > 0 else 0.0


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman correlation: Pearson's of the ranks (ties share their mean rank)."""
    return pearson(rankdata(x), rankdata(y))


class ScoreRegression(Objective):
    """Mean squared error of the ``regressor`` head's scores; ``pearson`` picks the best checkpoint."""

    head_names = ("regressor",)
    main_metric = "pearson"
    higher_is_better = True

    def count_targets(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Pairs (the loss is a mean over them) and real tokens."""
        return {
            "pairs": torch.tensor(len(batch["score"]), device=batch["score"].device),
            "tokens": batch["attention_mask"].sum(),
        }

    def __call__(
        self, model: nn.Module, batch: dict[str, torch.Tensor], norm: dict[str, torch.Tensor]
    ) -> ObjectiveOutput:
        """Squared error of ``batch``; predicted and gold scores when the model is in eval mode."""
        hidden = model.backbone(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        predicted = model.heads["regressor"](hidden, batch["attention_mask"]).float()  # (B,)
        errors = (predicted - batch["score"].float()) ** 2  # (B,)
        sums = {"sq_error_sum": errors.sum().detach(), "pair_count": norm["pairs"].new_tensor(len(errors))}
        predictions = None if model.training else {"pred": predicted.tolist(), "gold": batch["score"].tolist()}
        return ObjectiveOutput(errors.sum() / norm["pairs"].clamp(min=1), sums, predictions)

    def summarize(self, sums: dict[str, float], predictions: list | None = None) -> dict[str, float]:
        """``loss`` (mean squared error); with predictions ``pearson`` and ``spearman``."""
        metrics = {"loss": ratio(sums, "sq_error_sum", "pair_count")}
        if predictions:
            predicted = np.asarray([p for batch in predictions for p in batch["pred"]])
            gold = np.asarray([g for batch in predictions for g in batch["gold"]])
            metrics.update(pearson=pearson(predicted, gold), spearman=spearman(predicted, gold))
        return metrics
