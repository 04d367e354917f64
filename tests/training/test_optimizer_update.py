"""The lean optimizer update (embedding gradients kept row by row, clipping folded into fused AdamW) trains
exactly as clip_grad_norm_ + step + zero_grad does."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from lmtrain.commands import pretrain
from lmtrain.config import OptimConfig
from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec
from lmtrain.objectives.masked_lm import MaskedLM
from lmtrain.objectives.token_classification import TokenClassification
from lmtrain.run_folder.layout import read_metrics
from lmtrain.training import optimizer_update
from lmtrain.training.optim import build_optimizer
from lmtrain.training.optimizer_update import OptimizerUpdate, TouchedRows
from lmtrain.training.train_step import ObjectiveStep
from tests.conftest import TINY, compose_config, stopping_after_step, write_corpus

SPEC = TransformerSpec(vocab_size=97, n_layers=2, d_model=16, n_heads=2, d_ff=32, max_positions=24)
TAGGER = {"tagger": {"kind": "token_classifier", "n_classes": 5, "dropout": 0.1}}
STEPS = 6


def _batch(seed: int, mlm: bool) -> dict[str, torch.Tensor]:
    """Four sequences of words drawn from the first 40 ids: rows 40-96 of the embedding never get a gradient."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 40, (4, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    ids[0, 7:] = 0
    if mlm:
        labels = torch.where(torch.rand(ids.shape, generator=g) < 0.3, ids, IGNORE_INDEX)
    else:
        labels = torch.randint(0, 5, ids.shape, generator=g)
    labels[0, 7:] = IGNORE_INDEX
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _train(
    model: torch.nn.Module, objective, lean: bool, micro_batches: int, mlm: bool
) -> tuple[list[float], OptimizerUpdate]:
    """STEPS optimizer steps of ``micro_batches`` each (dropout on, clipping active); the losses and the update."""
    optimizer = build_optimizer(model, OptimConfig(lr=3e-2, weight_decay=0.1), torch.device("cpu"))
    update = OptimizerUpdate(model, optimizer, grad_clip=0.05, lean=lean, min_numel=0)
    step, losses = ObjectiveStep(model, objective), []
    for i in range(STEPS):
        torch.manual_seed(i)  # the same dropout masks on both paths
        update.before_backward()
        window = [_batch(i * micro_batches + j, mlm) for j in range(micro_batches)]
        for batch in window:
            loss = step(batch, objective.count_targets(batch)).loss / micro_batches
            loss.backward()
            losses.append(loss.item())
        update.apply()
    return losses, update


def _assert_same_training(build, objective, micro_batches: int = 1, mlm: bool = False) -> list[torch.Tensor]:
    """Train a copy on each path, check they end equal; the weights the lean path tracked."""
    torch.manual_seed(0)
    plain_model = build().train()
    lean_model = copy.deepcopy(plain_model)
    untouched = lean_model.backbone.embeddings.token.weight[40:].detach().clone()
    plain, _ = _train(plain_model, objective, False, micro_batches, mlm)
    lean, update = _train(lean_model, objective, True, micro_batches, mlm)
    assert lean == pytest.approx(plain, rel=1e-6, abs=1e-6)
    for (name, a), b in zip(lean_model.named_parameters(), plain_model.parameters()):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-6), name
    # rows without a gradient still moved (weight decay, decaying moments), as with the dense gradient
    assert not torch.equal(lean_model.backbone.embeddings.token.weight[40:], untouched)
    return [rows.weight for rows in update.tracked]


def test_a_fine_tuning_model_trains_as_on_the_plain_path():
    tracked = _assert_same_training(lambda: LanguageModel(SPEC, [], TAGGER), TokenClassification(list("OABCD")))
    assert [w.shape[0] for w in tracked] == [SPEC.vocab_size, SPEC.max_positions, 2]  # words, positions, segments


def test_gradient_accumulation_over_two_micro_batches_trains_as_on_the_plain_path():
    _assert_same_training(lambda: LanguageModel(SPEC, [], TAGGER), TokenClassification(list("OABCD")), 2)


def test_a_tied_mlm_head_keeps_the_dense_path_for_its_matrix_and_trains_as_on_the_plain_path():
    tracked = _assert_same_training(lambda: LanguageModel(SPEC, ["mlm"]), MaskedLM(False), 2, mlm=True)
    assert [w.shape[0] for w in tracked] == [SPEC.max_positions, 2]  # the tied word matrix is not tracked


def test_a_dense_gradient_reaching_a_tracked_weight_marks_every_row():
    """A use other than the lookup (an untracked tie) makes the buffer dense: every row is cleared."""
    embedding = torch.nn.Embedding(10, 3)
    rows = TouchedRows(embedding)
    rows.prepare()
    (embedding(torch.tensor([1, 2])).sum() + (embedding.weight * 2).sum()).backward()
    assert rows.rows() is None
    grad = rows.take_and_zero()
    assert grad is not None and not grad.any()
    rows.prepare()
    embedding(torch.tensor([4, 4, 7])).sum().backward()
    assert embedding.weight.grad is grad  # the touched rows were added into the kept buffer
    assert rows.rows().tolist() == [4, 7]
    assert embedding.weight.grad[[4, 7]].tolist() == [[2.0] * 3, [1.0] * 3]


def _losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["train/loss"] for e in read_metrics(run_dir) if "train/loss" in e}


def test_resume_with_dropout_on_the_lean_path_gives_exactly_the_uninterrupted_losses(tmp_path, monkeypatch):
    monkeypatch.setattr(optimizer_update, "TOUCHED_ROWS_MIN_NUMEL", 0)  # the tiny model's embeddings tracked
    cleared = []
    take_and_zero = TouchedRows.take_and_zero
    monkeypatch.setattr(TouchedRows, "take_and_zero", lambda self: cleared.append(1) or take_and_zero(self))
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=60)
    overrides = [
        *TINY,
        "data=text",
        f"data.train_files=[{corpus}]",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.log_every=1",
        "model.dropout=0.1",
        "model.tie_embeddings=false",
        "trainer.max_steps=10",
        "trainer.save_every=5",
        "trainer.eval_every=0",
        "trainer.keep_last=0",
    ]
    for name in ("straight", "resumed"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "straight")
    pretrain.run(compose_config("pretrain", overrides))
    monkeypatch.chdir(tmp_path / "resumed")
    with stopping_after_step(5), pytest.raises(SystemExit):
        pretrain.run(compose_config("pretrain", overrides))
    pretrain.run(compose_config("pretrain", [*overrides, "trainer.resume=auto"]))
    expected, got = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    assert [got[s] for s in range(6, 11)] == [expected[s] for s in range(6, 11)]
    assert len(cleared) >= 20  # the trainer took the lean path


def test_closing_gives_the_embeddings_back_and_a_later_update_tracks_them_again():
    model = LanguageModel(SPEC, [], TAGGER).train()
    objective = TokenClassification(list("OABCD"))
    _, first = _train(model, objective, True, 1, False)
    token = model.backbone.embeddings.token
    assert token.sparse and token.weight.grad is not None
    first.close()
    assert not token.sparse and token.weight.grad is None and not first.tracked
    _, second = _train(model, objective, True, 1, False)
    assert [rows.weight for rows in second.tracked][0] is token.weight
