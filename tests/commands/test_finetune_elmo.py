"""`lmtrain finetune init=<elmo run>`: scalar-mixed ELMo features under the tagging and classification heads.

Tagging defaults to the paper's task model: the mix joined with the token vectors, a task biLSTM and a CRF.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from lmtrain.commands import finetune, predict, pretrain
from lmtrain.errors import UserError
from lmtrain.files import checkpoints as ckpt
from lmtrain.models.capabilities import Capability
from lmtrain.models.loading import load_checkpoint
from tests.commands.test_finetune import ner_files, run_command
from tests.tasks.fixtures import FAST, ner_sentence, write_task_files

# a biLM of seconds: 2 LSTM layers of 48 cells over 16-wide token vectors
ELMO_TINY = [
    "model=elmo",
    "trainer.progress=false",
    "model.d_model=16",
    "model.lstm_dim=48",
    "model.max_chars=12",
    "model.char_filter_counts=[8,8,16,16,16]",
    "tokenizer.vocab_size=400",
    "tokenizer.min_frequency=1",
    "data.max_seq_len=32",
    "trainer.max_steps=150",
    "trainer.batch_size=16",
    "trainer.eval_every=0",
    "trainer.save_every=0",
    "optim.lr=5e-3",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = write_task_files(tmp_path_factory.mktemp("elmo-task-data"))
    rng = random.Random(5)  # unlabelled text in the tasks' domain, for the biLM
    docs = [" ".join(" ".join(w for w, _ in ner_sentence(rng)) for _ in range(6)) for _ in range(150)]
    (root / "corpus.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def elmo_run(data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("elmo-run")
    run_command(
        pretrain,
        "pretrain",
        run,
        [*ELMO_TINY, "data=text", f"data.train_files=[{data / 'corpus.txt'}]", f"data.cache_dir={run / 'cache'}"],
    )
    return run


@pytest.fixture(scope="module")
def elmo_ner(data, elmo_run, tmp_path_factory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("elmo-ner")
    summary = run_command(
        finetune, "finetune", run, ["task=ner", f"init={elmo_run}", *FAST, "optim.lr=1e-2", *ner_files(data)]
    )
    return run, summary


def test_elmo_tagger_is_a_bilstm_crf_over_the_frozen_bilm_and_beats_all_o(elmo_ner, elmo_run):
    run, summary = elmo_ner
    assert summary["model"] == "elmo"
    assert summary["baseline/all_o_f1"] == 0.0 and summary["best/f1"] > 0.5, summary
    pretrained, _, _ = load_checkpoint(elmo_run, needs=Capability.TOKEN_FEATURES)
    tuned, _, meta = load_checkpoint(run / "checkpoints" / "best", needs=Capability.TOKEN_FEATURES)
    assert meta["task_heads"]["tagger"] == {
        "kind": "token_classifier",
        "n_classes": 5,
        "dropout": 0.1,
        "encoder": "bilstm",
        "lstm_dim": 128,
        "crf": True,
    }
    assert tuned.backbone.d_out == 3 * pretrained.spec.d_model  # [token vector; mixed biLM states]
    for name, value in pretrained.backbone.state_dict().items():  # frozen by default: the biLM is untouched
        assert torch.equal(tuned.backbone.bilm.state_dict()[name], value), name
    assert not torch.equal(tuned.backbone.mix.weights, torch.zeros_like(tuned.backbone.mix.weights))
    bilm = sum(p.numel() for p in pretrained.backbone.parameters())
    assert summary["trainable_parameters"] == summary["parameters"] - bilm


def test_elmo_tagger_predicts_valid_bio_with_viterbi(elmo_ner, tmp_path):
    run, _ = elmo_ner
    text = tmp_path / "in.txt"
    text.write_text("Alice visited Paris .\nThe Acme Corp office in Berlin hired Bob Stone and Carol .\n")
    records = run_command(predict, "predict", tmp_path / "p", [f"ckpt={run}", f"input={text}"])
    assert records[0]["words"] == ["Alice", "visited", "Paris", "."] and len(records[0]["tags"]) == 4
    for record in records:  # the CRF's constraints: an I-X only after B-X or I-X
        for before, tag in zip(["O", *record["tags"]], record["tags"]):
            assert not tag.startswith("I-") or before[2:] == tag[2:], record["tags"]
    assert any(r["entities"] for r in records)


def test_elmo_linear_tagger_remains_available(data, elmo_run, tmp_path):
    summary = run_command(
        finetune,
        "finetune",
        tmp_path,
        [
            "task=ner",
            f"init={elmo_run}",
            *FAST,
            "optim.lr=3e-2",
            "finetune.head_lr=3e-2",
            "trainer.max_steps=200",
            "task.encoder=linear",
            *ner_files(data),
        ],
    )
    assert summary["best/f1"] > 0.5, summary
    assert summary["trainable_parameters"] < summary["parameters"] // 4  # the mix and one linear layer
    _, _, meta = load_checkpoint(tmp_path / "checkpoints" / ckpt.BEST, needs=Capability.TOKEN_FEATURES)
    assert meta["task_heads"]["tagger"]["encoder"] == "linear" and not meta["task_heads"]["tagger"]["crf"]


def test_elmo_classifier_tunes_the_bilm_when_asked(data, elmo_run, tmp_path):
    # 3e-3 for 300 steps learnt the task under 8 of 8 seeds probed; 1e-2 for 150 under 3 of 4.
    files = [f"data.train_file={data / 'train.tsv'}", f"data.eval_file={data / 'dev.tsv'}"]
    summary = run_command(
        finetune,
        "finetune",
        tmp_path,
        [
            "task=classification",
            f"init={elmo_run}",
            *FAST,
            "finetune.freeze_backbone=false",
            "optim.lr=3e-3",
            "trainer.max_steps=300",
            *files,
        ],
    )
    assert summary["best/accuracy"] > summary["baseline/majority_accuracy"] + 0.1, summary
    assert summary["trainable_parameters"] == summary["parameters"]
    _, _, meta = load_checkpoint(tmp_path / "checkpoints" / ckpt.BEST, needs=Capability.TOKEN_FEATURES)
    assert meta["task_heads"]["classifier"]["kind"] == "mean_pooled_classifier"


def test_elmo_refuses_generation_and_layer_freezing(data, elmo_run, tmp_path):
    with pytest.raises(
        UserError,
        match=r"this task needs a causal LM head \(next-token prediction\), but init=.* "
        r"holds a model of the elmo family \(elmo\), which has bidirectional token "
        r"features for task heads, forward and backward language models",
    ):
        run_command(
            finetune,
            "finetune",
            tmp_path / "g",
            ["task=generation", f"init={elmo_run}", *FAST, f"data.train_file={data / 'pairs.jsonl'}"],
        )
    with pytest.raises(UserError, match="freeze_layers=1 applies to Transformer backbones"):
        run_command(
            finetune,
            "finetune",
            tmp_path / "f",
            ["task=ner", f"init={elmo_run}", *FAST, "finetune.freeze_layers=1", *ner_files(data)],
        )
