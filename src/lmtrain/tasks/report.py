"""The detail a fine-tuned run's summary gets beyond its metrics: the objective's report of the held-out set."""

from __future__ import annotations

from typing import Any

from lmtrain.training.evaluation import evaluate_objective


def evaluation_report(trainer: Any) -> dict[str, Any]:
    """The objective's ``report`` (e.g. per-class scores and a confusion matrix) of the final model.

    Objectives without a ``report`` method, and runs without a held-out set, give ``{}``. The predictions are
    those of the run's final evaluation where it was taken at the last step (the same model and batches), else
    of a new evaluation.

    Args:
        trainer: the :class:`lmtrain.training.trainer.Trainer` after ``fit``.
    Returns:
        JSON-ready entries for ``summary.json``.
    """
    report = getattr(trainer.objective, "report", None)
    if report is None or trainer.eval_set is None or not len(trainer.eval_set):
        return {}
    kept = getattr(trainer, "last_predictions", None)
    if kept is not None and kept[0] == trainer.state.step and kept[1]:
        return report(kept[1])
    predictions: list = []
    evaluate_objective(
        trainer.model,
        trainer.objective,
        trainer.eval_set,
        trainer.collate,
        trainer.cfg.batch_size,
        trainer.cfg.eval_batches,
        trainer.device,
        trainer.precision.autocast,
        predictions_out=predictions,
        dist=trainer.dist,
    )
    return report(predictions)
