"""`lmtrain pretrain init=...`: continued pretraining from a run, a Hugging Face folder or a Hub id."""

from __future__ import annotations

import json

import pytest
import torch

from lmtrain.commands import export, pretrain
from lmtrain.errors import UserError
from tests.commands.test_finetune import run_command
from tests.conftest import run_cli, write_corpus

STEPS = [
    "trainer.max_steps=60",
    "trainer.batch_size=8",
    "trainer.log_every=5",
    "trainer.eval_every=0",
    "trainer.save_every=0",
    "trainer.progress=false",
    "trainer.preflight=false",
    "trainer.max_time=null",
    "optim.lr=5e-3",
    "optim.warmup_ratio=0.05",
    "data.max_seq_len=32",
    "data.dupe_factor=2",
]


def _new_corpus(tmp_path):
    corpus = write_corpus(tmp_path / "domain.txt", n_docs=120, seed=7)
    return ["data=text", f"data.train_files=[{corpus}]", f"data.cache_dir={tmp_path / 'cache'}"]


@pytest.fixture(scope="module")
def hf_bert(runs, tmp_path_factory):
    """``runs['bert']`` (an untrained tiny BERT with MLM + NSP heads) exported as a Hugging Face folder."""
    out = tmp_path_factory.mktemp("hf") / "bert"
    run_command(export, "export", out.parent / "work", [f"ckpt={runs['bert']}", "format=hf", f"out={out}"])
    return out


def test_continued_mlm_beats_the_starting_weights_and_exports(hf_bert, tmp_path):
    transformers = pytest.importorskip("transformers")
    summary = run_command(
        pretrain, "pretrain", tmp_path / "run", ["model=bert", f"init={hf_bert}", *_new_corpus(tmp_path), *STEPS]
    )
    assert summary["init"].startswith(str(hf_bert))
    assert "start/mlm_acc" in summary  # the starting weights, measured at step 0 on the same held-out data
    assert summary["eval/mlm_acc"] > summary["start/mlm_acc"] + 0.05
    # the run's model has the starting model's dimensions, not the preset's
    meta = json.loads(next((tmp_path / "run" / "checkpoints").glob("step-*/model.json")).read_text())
    assert meta["spec"]["d_model"] == 16 and meta["model_name"] == "bert"
    out = tmp_path / "exported"
    run_command(export, "export", tmp_path / "e", [f"ckpt={tmp_path / 'run'}", "format=hf", f"out={out}"])
    model = transformers.AutoModelForPreTraining.from_pretrained(out)
    tokens = transformers.AutoTokenizer.from_pretrained(out)("The farmer sold the old barn.", return_tensors="pt")
    with torch.no_grad():
        assert model(**tokens).prediction_logits.shape[-1] == meta["spec"]["vocab_size"]


def test_a_checkpoint_without_the_objectives_heads_gets_new_ones(runs, tmp_path):
    summary = run_command(
        pretrain, "pretrain", tmp_path / "run", ["model=bert", f"init={runs['nsp']}", *_new_corpus(tmp_path), *STEPS]
    )
    assert summary["new_heads"] == ["mlm"]  # created, its output layer tied to the embeddings; NSP kept
    assert summary["eval/mlm_acc"] > summary["start/mlm_acc"]


def test_a_causal_objective_refuses_a_bidirectional_start(runs, tmp_path):
    with pytest.raises(
        UserError,
        match=r"init=.* holds a model of the transformer family \(bert\), which lacks a "
        r"causal LM head",
    ):
        run_command(
            pretrain,
            "pretrain",
            tmp_path / "run",
            ["model=gpt", f"init={runs['bert']}", *_new_corpus(tmp_path), *STEPS],
        )


def test_model_and_tokenizer_overrides_cannot_apply_to_a_loaded_model(runs, tmp_path):
    result = run_cli(
        "pretrain",
        "model=bert",
        f"init={runs['bert']}",
        "model.n_layers=4",
        "tokenizer.vocab_size=900",
        *_new_corpus(tmp_path),
        *STEPS,
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert (
        "brings its own dimensions and tokenizer, so model.n_layers, tokenizer.vocab_size cannot apply" in result.stderr
    )
