"""`trainer.compile=true`: a compiled step computes what the eager step does, and a compiler
failure falls back to eager with one warning.

Dynamo traces the real objective and model either way; the backend turns the traced graphs
into code. `aot_eager` (Dynamo + AOTAutograd, no code generation) keeps these tests free of a
C++ compiler and fast; set LMTRAIN_TEST_INDUCTOR=1 to also run the default Inductor backend.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pytest
import torch

from lmtrain.commands import pretrain
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec
from lmtrain.run_folder.layout import read_metrics
from lmtrain.training import compile as compile_module
from lmtrain.training.compile import CompiledStep
from lmtrain.training.trainer import ObjectiveStep
from tests.conftest import TINY, compose_config, write_corpus
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
BACKENDS = ["aot_eager"] + (["inductor"] if os.environ.get("LMTRAIN_TEST_INDUCTOR") == "1" else [])


def _step(objective_name: str) -> ObjectiveStep:
    torch.manual_seed(0)
    switches = GPT if objective_name == "clm" else {}
    spec = TransformerSpec(
        vocab_size=64,
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_ff=48,
        max_positions=32,
        dropout=0.0,
        attention_dropout=0.0,
        **switches,
    )
    objective = build_objective(objective_name)
    return ObjectiveStep(LanguageModel(spec, objective.head_names), objective)


def _batch(objective_name: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 64, (3, 12), generator=g)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 9:] = False  # one padded row: the objectives take their masked paths
    batch = {"input_ids": ids, "attention_mask": mask}
    if objective_name != "clm":
        selected = (torch.rand(3, 12, generator=g) < 0.3) & mask
        selected[:, 0] = True
        batch["labels"] = torch.where(selected, ids, torch.full_like(ids, -100))
        batch["token_type_ids"] = torch.zeros_like(ids)
        batch["next_sentence_label"] = torch.tensor([0, 1, 0])
    return batch


def _loss_and_grads(step, module: ObjectiveStep, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    module.zero_grad(set_to_none=True)
    out = step(batch, module.objective.count_targets(batch))
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("objective_name", ["mlm_nsp", "clm"])
def test_compiled_step_gives_the_eager_loss_and_gradients(objective_name, backend):
    torch._dynamo.reset()
    module = _step(objective_name)
    batch = _batch(objective_name)
    eager_loss, eager_grads = _loss_and_grads(module, module, batch)
    compiled = CompiledStep(module, backend=backend)
    loss, grads = _loss_and_grads(compiled, module, batch)
    assert compiled.is_compiled
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-5)
    assert grads.keys() == eager_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], eager_grads[name], rtol=1e-4, atol=1e-5, msg=name)


def test_a_compiler_failure_warns_once_and_runs_eagerly(caplog):
    torch._dynamo.reset()
    module = _step("clm")
    batch = _batch("clm")
    eager_loss, _ = _loss_and_grads(module, module, batch)

    def broken_backend(graph, example_inputs):
        raise RuntimeError("no working C++ compiler found")

    compiled = CompiledStep(module, backend=broken_backend)
    with caplog.at_level(logging.WARNING, logger="lmtrain.training.compile"):
        first, _ = _loss_and_grads(compiled, module, batch)
        second, _ = _loss_and_grads(compiled, module, batch)
    assert not compiled.is_compiled
    torch.testing.assert_close(first, eager_loss)
    torch.testing.assert_close(second, eager_loss)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "runs eagerly" in warnings[0].getMessage()
    assert "no working C++ compiler" in warnings[0].getMessage()


def test_compile_unavailable_at_wrap_time_runs_eagerly(monkeypatch, caplog):
    module = _step("clm")

    def unsupported(*args, **kwargs):
        raise RuntimeError("torch.compile is not supported on this Python version")

    monkeypatch.setattr(torch, "compile", unsupported)
    with caplog.at_level(logging.WARNING, logger="lmtrain.training.compile"):
        compiled = CompiledStep(module)
    assert not compiled.is_compiled and "not supported" in caplog.text
    batch = _batch("clm")
    torch.testing.assert_close(_loss_and_grads(compiled, module, batch)[0], _loss_and_grads(module, module, batch)[0])


def _losses(run_dir: Path) -> list[float]:
    return [e["train/loss"] for e in read_metrics(run_dir) if "train/loss" in e]


def test_pretrain_with_compile_true_trains_like_eager(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(compile_module, "BACKEND", "aot_eager")
    torch._dynamo.reset()
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=40)
    common = [
        *TINY,
        "model=gpt",
        "data=text",
        f"data.train_files=[{corpus}]",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.max_steps=6",
        "trainer.log_every=1",
        "trainer.eval_every=0",
        "trainer.save_every=0",
        "model.dropout=0.0",
        "model.attention_dropout=0.0",
    ]
    runs = {}
    for flag in ("false", "true"):
        run_dir = tmp_path / f"compile-{flag}"
        run_dir.mkdir()
        monkeypatch.chdir(run_dir)
        with caplog.at_level("WARNING", logger=compile_module.log.name):
            pretrain.run(compose_config("pretrain", [*common, f"trainer.compile={flag}"]))
        runs[flag] = _losses(run_dir)
    assert "runs eagerly" not in caplog.text  # the compiled step really ran compiled
    assert len(runs["true"]) == 6
    assert runs["true"] == pytest.approx(runs["false"], rel=1e-4)


def test_the_gpt_step_with_dropout_traces_as_one_graph():
    """lmtrain's CPU-only kernels (oneDNN linear layers, its dropout, the chunked loss) step aside
    under Dynamo, so compiling still sees the whole step."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    spec = TransformerSpec(
        vocab_size=64,
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_ff=48,
        max_positions=32,
        dropout=0.1,
        attention_dropout=0.1,
        **GPT,
    )
    objective = build_objective("clm")
    module = ObjectiveStep(LanguageModel(spec, objective.head_names).train(), objective)
    batch = {"input_ids": torch.randint(5, 64, (3, 12)), "attention_mask": torch.ones(3, 12, dtype=torch.bool)}
    explanation = torch._dynamo.explain(module)(batch, objective.count_targets(batch))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["pooled_classifier", "mean_pooled_classifier"])
def test_a_compiled_classification_step_gives_the_eager_loss_and_gradients(kind, backend):
    """The pooled head reads the first position only (``states_for_head``); compiled, the step still matches."""
    from lmtrain.objectives.sequence_classification import SequenceClassification
    from tests.objectives.test_sequence_classification import batch, classifier

    torch._dynamo.reset()
    torch.manual_seed(0)
    module = ObjectiveStep(classifier(kind).eval(), SequenceClassification(["a", "b", "c"]))  # eval: no dropout
    data = batch()
    eager_loss, eager_grads = _loss_and_grads(module, module, data)
    compiled = CompiledStep(module, backend=backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss, grads = _loss_and_grads(compiled, module, data)
    assert compiled.is_compiled
    assert not [w for w in caught if "Error detected" in str(w.message)]  # no part of it failed to trace
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == eager_grads.keys()
    scale = max(grad.abs().max().item() for grad in eager_grads.values())
    for name in grads:
        torch.testing.assert_close(grads[name], eager_grads[name], rtol=1e-4, atol=1e-5 * scale, msg=name)
