"""The language-model objectives (fused projection + cross-entropy) give the loss, metric sums and
gradients of the plain computation: full logits from the head, then ``F.cross_entropy``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.models.elmo import ElmoSpec, build_elmo
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec
from lmtrain.objectives import BidirectionalLM, CausalLM, CompletionLM, MaskedLM

GPT = dict(
    causal=True,
    norm="pre",
    segment_vocab_size=0,
    embedding_norm=False,
    final_norm=True,
    activation="gelu_tanh",
    layer_norm_eps=1e-5,
)


def _transformer(heads: list[str], **switches) -> LanguageModel:
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
        **switches,
    )
    return LanguageModel(spec, heads)


def _elmo():
    torch.manual_seed(0)
    spec = ElmoSpec(vocab_size=40, d_model=16, n_layers=2, lstm_dim=24, token_encoder="embedding", dropout=0.0)
    return build_elmo(spec, None)


def _batch(loss_mask: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 40, (3, 12), generator=g)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 9:] = mask[2, 5:] = False
    selected = (torch.rand(3, 12, generator=g) < 0.3) & mask
    selected[:, 1] = True
    batch = {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": torch.zeros_like(ids),
        "labels": torch.where(selected, ids, IGNORE_INDEX),
        "next_sentence_label": torch.tensor([0, 1, 0]),
    }
    if loss_mask:
        batch["loss_mask"] = (torch.arange(12) >= 4).long().expand(3, 12) * mask
    return batch


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = logits.float()
    return F.cross_entropy(logits, targets, reduction="sum"), (logits.argmax(-1) == targets).sum()


def _plain_clm(model, batch, norm):
    mask = CausalLM._target_mask(batch)
    logits = model.heads["lm"](model.backbone(batch["input_ids"])[:, :-1])[mask]
    loss_sum, correct = _cross_entropy(logits, batch["input_ids"][:, 1:][mask])
    return loss_sum / norm["lm"], {"lm_loss_sum": loss_sum, "lm_correct": correct, "lm_count": mask.sum()}


def _plain_mlm(model, batch, norm, next_sentence=True):
    hidden = model.backbone(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    selected = batch["labels"] != IGNORE_INDEX
    mlm_sum, mlm_correct = _cross_entropy(model.heads["mlm"](hidden[selected]), batch["labels"][selected])
    sums = {"mlm_loss_sum": mlm_sum, "mlm_correct": mlm_correct, "mlm_count": selected.sum()}
    if not next_sentence:
        return mlm_sum / norm["mlm"], sums
    nsp_sum, nsp_correct = _cross_entropy(model.heads["nsp"](hidden), batch["next_sentence_label"])
    sums.update(nsp_loss_sum=nsp_sum, nsp_correct=nsp_correct, nsp_count=torch.tensor(3))
    return mlm_sum / norm["mlm"] + nsp_sum / norm["nsp"], sums


def _plain_mlm_alone(model, batch, norm):
    return _plain_mlm(model, batch, norm, next_sentence=False)


class _OwnBackbone(torch.nn.Module):
    """A backbone of a user's own, without ``states_at``: the objective runs it whole and picks its states."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.inner(input_ids, attention_mask, token_type_ids)


def _own_backbone(heads: list[str]) -> LanguageModel:
    model = _transformer(heads)
    model.backbone = _OwnBackbone(model.backbone)
    return model


def _plain_bilm(model, batch, norm):
    ids, states = batch["input_ids"], model.backbone(batch["input_ids"], batch["attention_mask"])
    mask = BidirectionalLM._target_mask(batch)
    fwd_sum, fwd_correct = _cross_entropy(model.heads["lm"](states.forward[-1][:, :-1][mask]), ids[:, 1:][mask])
    bwd_sum, bwd_correct = _cross_entropy(model.heads["lm"](states.backward[-1][:, 1:][mask]), ids[:, :-1][mask])
    return fwd_sum / norm["fwd"] + bwd_sum / norm["bwd"], {
        "fwd_loss_sum": fwd_sum,
        "bwd_loss_sum": bwd_sum,
        "lm_count": mask.sum(),
        "fwd_correct": fwd_correct,
        "bwd_correct": bwd_correct,
    }


CASES = {  # name -> (model, objective, plain computation, batch has a loss_mask)
    "clm": (lambda: _transformer(["lm"], **GPT), CausalLM(), _plain_clm, False),
    "completion": (lambda: _transformer(["lm"], **GPT), CompletionLM(), _plain_clm, True),
    "untied_clm": (lambda: _transformer(["lm"], tie_embeddings=False, **GPT), CausalLM(), _plain_clm, False),
    "mlm_nsp": (lambda: _transformer(["mlm", "nsp"]), MaskedLM(next_sentence=True), _plain_mlm, False),
    "mlm": (lambda: _transformer(["mlm"]), MaskedLM(next_sentence=False), _plain_mlm_alone, False),
    "mlm_nsp_own_backbone": (lambda: _own_backbone(["mlm", "nsp"]), MaskedLM(next_sentence=True), _plain_mlm, False),
    "bilm": (_elmo, BidirectionalLM(), _plain_bilm, False),
}


def _loss_sums_grads(model, compute, batch, norm):
    model.zero_grad(set_to_none=True)
    loss, sums = compute(model, batch, norm)
    loss.backward()
    return loss.detach(), sums, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", list(CASES))
def test_objective_equals_the_plain_logits_computation(name):
    build, objective, plain, loss_mask = CASES[name]
    model, batch = build(), _batch(loss_mask)
    norm = {k: v * 2 for k, v in objective.count_targets(batch).items()}  # as if a second micro-batch

    def fused(model, batch, norm):
        out = objective(model, batch, norm)
        return out.loss, out.sums

    loss, sums, grads = _loss_sums_grads(model, fused, batch, norm)
    ref_loss, ref_sums, ref_grads = _loss_sums_grads(model, plain, batch, norm)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6)
    assert sums.keys() == ref_sums.keys()
    for key in sums:
        assert sums[key].dtype == ref_sums[key].dtype, key
        torch.testing.assert_close(sums[key], ref_sums[key].detach(), rtol=1e-6, atol=1e-5, msg=key)
    assert grads.keys() == ref_grads.keys()
    for key in grads:
        torch.testing.assert_close(grads[key], ref_grads[key], rtol=1e-5, atol=1e-6, msg=key)
