"""Sentence-pair similarity as an lmtrain task plug: a score in [0, task.max_score], Pearson and Spearman."""

from sentence_similarity.head import RegressionHead
from sentence_similarity.objective import ScoreRegression
from sentence_similarity.schema import SimilarityDataConfig, SimilarityPredictConfig, SimilarityTaskConfig
from sentence_similarity.task import SimilarityTask

__all__ = [
    "RegressionHead",
    "ScoreRegression",
    "SimilarityDataConfig",
    "SimilarityPredictConfig",
    "SimilarityTaskConfig",
    "SimilarityTask",
]
