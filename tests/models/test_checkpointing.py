"""`model.checkpoint_activations=true`: the same loss and gradients, fewer saved activations."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec
from tests.conftest import loss_objective as build_objective

GPT = dict(
    causal=True,
    norm="pre",
    segment_vocab_size=0,
    embedding_norm=False,
    final_norm=True,
    activation="gelu_tanh",
    layer_norm_eps=1e-5,
)


def _model(objective_name: str, checkpointed: bool) -> LanguageModel:
    torch.manual_seed(0)
    spec = TransformerSpec(
        vocab_size=64,
        n_layers=3,
        d_model=32,
        n_heads=4,
        d_ff=64,
        max_positions=32,
        dropout=0.1,
        attention_dropout=0.1,
        **(GPT if objective_name == "clm" else {}),
    )
    spec = dataclasses.replace(spec, checkpoint_activations=checkpointed)
    return LanguageModel(spec, build_objective(objective_name).head_names).train()


def _batch(objective_name: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 64, (4, 16), generator=g)
    mask = torch.ones(4, 16, dtype=torch.bool)
    mask[2, 11:] = False
    batch = {"input_ids": ids, "attention_mask": mask}
    if objective_name == "mlm_nsp":
        selected = (torch.rand(4, 16, generator=g) < 0.3) & mask
        batch["labels"] = torch.where(selected, ids, torch.full_like(ids, -100))
        batch["token_type_ids"] = (torch.arange(16) >= 8).long().expand(4, 16)
        batch["next_sentence_label"] = torch.tensor([0, 1, 1, 0])
    return batch


def _run(model: LanguageModel, objective_name: str) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """Loss, gradients, and bytes of activations kept for the backward pass."""
    objective, batch = build_objective(objective_name), _batch(objective_name)
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    torch.manual_seed(5)  # the same dropout masks for both models
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = objective(model, batch, objective.count_targets(batch)).loss
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}, sum(saved)


@pytest.mark.parametrize("objective_name", ["mlm_nsp", "clm"])
def test_checkpointed_blocks_give_the_same_loss_and_gradients_with_dropout(objective_name):
    loss, grads, saved = _run(_model(objective_name, checkpointed=False), objective_name)
    ckpt_loss, ckpt_grads, ckpt_saved = _run(_model(objective_name, checkpointed=True), objective_name)
    torch.testing.assert_close(ckpt_loss, loss, rtol=0, atol=0)
    assert ckpt_grads.keys() == grads.keys()
    for name in grads:  # recomputation replays the forward's dropout masks exactly
        torch.testing.assert_close(ckpt_grads[name], grads[name], rtol=1e-5, atol=1e-7, msg=name)
    assert ckpt_saved < saved / 2  # only each block's input survives the forward


@torch.no_grad()
def test_checkpointed_model_evaluates_like_the_plain_one():
    model = _model("clm", checkpointed=True).eval()
    plain = _model("clm", checkpointed=False).eval()
    ids = torch.randint(5, 64, (2, 10))
    torch.testing.assert_close(model.backbone(ids), plain.backbone(ids))
