"""Causal LM loss on right-padded batches: padding changes nothing, predicted or attended."""

from __future__ import annotations

import torch

from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec
from lmtrain.objectives import CausalLM, CompletionLM

GPT = dict(
    causal=True,
    norm="pre",
    segment_vocab_size=0,
    embedding_norm=False,
    final_norm=True,
    activation="gelu_tanh",
    layer_norm_eps=1e-5,
)


def _model() -> LanguageModel:
    torch.manual_seed(0)
    spec = TransformerSpec(
        vocab_size=40,
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_ff=48,
        max_positions=32,
        dropout=0.0,
        attention_dropout=0.0,
        **GPT,
    )
    return LanguageModel(spec, ["lm"]).eval()


def _sums(objective, model, rows: list[torch.Tensor], width: int, loss_masks=None) -> dict[str, float]:
    """Metric sums of ``rows`` right-padded (with a junk id) to ``width``."""
    ids = torch.full((len(rows), width), 7, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, True
    batch = {"input_ids": ids, "attention_mask": mask}
    if loss_masks is not None:
        batch["loss_mask"] = torch.zeros(len(rows), width, dtype=torch.long)
        for i, m in enumerate(loss_masks):
            batch["loss_mask"][i, : len(m)] = m
    out = objective(model, batch, objective.count_targets(batch))
    return {k: float(v) for k, v in out.sums.items()}


@torch.no_grad()
def test_right_padding_is_neither_predicted_nor_attended():
    model, objective = _model(), CausalLM()
    rows = [torch.randint(10, 40, (n,), generator=torch.Generator().manual_seed(n)) for n in (9, 5, 2)]
    alone = [_sums(objective, model, [row], len(row)) for row in rows]
    padded = _sums(objective, model, rows, 12)
    assert padded["lm_count"] == sum(a["lm_count"] for a in alone) == 8 + 4 + 1
    assert padded["lm_correct"] == sum(a["lm_correct"] for a in alone)
    torch.testing.assert_close(padded["lm_loss_sum"], sum(a["lm_loss_sum"] for a in alone), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_completion_loss_counts_only_completion_tokens_under_padding():
    model, objective = _model(), CompletionLM()
    rows = [torch.randint(10, 40, (n,), generator=torch.Generator().manual_seed(n)) for n in (8, 6)]
    loss_masks = [torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), torch.tensor([0, 0, 1, 1, 1, 1])]
    alone = [_sums(objective, model, [row], len(row), [m]) for row, m in zip(rows, loss_masks)]
    padded = _sums(objective, model, rows, 11, loss_masks)
    assert padded["lm_count"] == 4 + 4
    torch.testing.assert_close(padded["lm_loss_sum"], sum(a["lm_loss_sum"] for a in alone), rtol=1e-5, atol=1e-5)
