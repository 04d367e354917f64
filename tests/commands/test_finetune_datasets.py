"""`datasets` datasets end to end: pretraining on a dataset folder (data=hf), NER with ClassLabel tags
from a save_to_disk folder, classification from a parquet dataset repository, compressed and globbed
fine-tuning files."""

from __future__ import annotations

import gzip
import random

import numpy as np
import pytest

from lmtrain.commands import finetune, pretrain
from lmtrain.errors import UserError
from lmtrain.run_folder.layout import read_metrics
from lmtrain.tasks import build_task
from lmtrain.tasks.conll import read_conll
from tests.commands.test_finetune import run_command
from tests.conftest import TINY, compose_config, write_corpus
from tests.data.hf_fixtures import offline_hf_cache, write_parquet_repo, write_saved_dataset
from tests.tasks.fixtures import FAST, TINY_SCRATCH, ner_sentence, write_conll, write_sentiment_tsv

datasets = pytest.importorskip("datasets")
# CoNLL-2003's tag names on the Hub, in its order (IOB2)
CONLL_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def test_pretrain_on_a_dataset_folder_loss_falls(tmp_path, monkeypatch):
    offline_hf_cache(tmp_path, monkeypatch)
    docs = write_corpus(tmp_path / "corpus.txt", n_docs=60).read_text().splitlines()
    repo = write_parquet_repo(tmp_path / "repo", {"train": {"text": docs}}, shards=3)
    run_dir = tmp_path / "run"
    run_command(
        pretrain,
        "pretrain",
        run_dir,
        [
            "model=gpt",
            *TINY,
            "data=hf",
            f"data.path={repo}",
            "data.streaming=true",
            f"data.cache_dir={tmp_path / 'cache'}",
            "trainer.log_every=1",
            "trainer.max_steps=40",
            "optim.lr=5e-3",
            "model.d_model=64",
        ],
    )
    losses = [e["train/loss"] for e in read_metrics(run_dir) if "train/loss" in e]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5, losses


def _ner_columns(n: int, seed: int) -> dict[str, list]:
    rng = random.Random(seed)
    sentences = [ner_sentence(rng) for _ in range(n)]
    return {
        "tokens": [[w for w, _ in s] for s in sentences],
        "ner_tags": [[CONLL_TAGS.index(t) for _, t in s] for s in sentences],
    }


def test_ner_reads_classlabel_tags_by_their_names(tmp_path, monkeypatch):
    offline_hf_cache(tmp_path, monkeypatch)
    features = datasets.Features(
        {
            "tokens": datasets.List(datasets.Value("string")),
            "ner_tags": datasets.List(datasets.ClassLabel(names=CONLL_TAGS)),
        }
    )
    saved = write_saved_dataset(
        tmp_path / "conll", {"train": _ner_columns(240, 0), "validation": _ner_columns(60, 1)}, features
    )
    summary = run_command(
        finetune,
        "finetune",
        tmp_path / "run",
        ["task=ner", *TINY_SCRATCH, *FAST, "data.source=hf", f"data.path={saved}", "data.eval_split=validation"],
    )
    assert summary["labels"] == ["O", "B-LOC", "B-ORG", "I-ORG", "B-PER"]  # the ClassLabel names
    assert summary["best/f1"] > 0.5, summary  # seqeval's entity F1, well above all-O
    assert {"eval/PER/f1", "eval/LOC/f1", "eval/ORG/f1"} <= set(summary)


def test_classification_from_a_parquet_dataset_repository(tmp_path, monkeypatch):
    offline_hf_cache(tmp_path, monkeypatch)
    rows = [line.split("\t") for line in write_sentiment_tsv(tmp_path / "s.tsv", 260, 0).read_text().splitlines()[1:]]
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])}
    )
    repo = write_parquet_repo(
        tmp_path / "sst", {"train": {"sentence": [r[0] for r in rows], "label": [int(r[1]) for r in rows]}}, features
    )
    summary = run_command(
        finetune,
        "finetune",
        tmp_path / "run",
        ["task=classification", *TINY_SCRATCH, *FAST, "data.source=hf", f"data.path={repo}", "data.eval_fraction=0.25"],
    )
    assert summary["confusion_matrix"]["labels"] == ["negative", "positive"]
    assert summary["best/accuracy"] > summary["baseline/majority_accuracy"] + 0.1, summary
    with pytest.raises(
        UserError,
        match=r"data.label_column=stars: .*/sst\[train\] has no column 'stars'; its columns "
        r"are sentence, label\.",
    ):
        run_command(
            finetune,
            "finetune",
            tmp_path / "bad",
            ["task=classification", "data.source=hf", f"data.path={repo}", "data.label_column=stars"],
        )


def test_ner_reads_a_glob_of_compressed_conll_files(tmp_path):
    expected = []
    for i in (2, 0, 1):  # written out of order: read in sorted order
        text = write_conll(tmp_path / "plain.conll", 30, seed=i).read_bytes()
        with gzip.open(tmp_path / f"train-{i}.conll.gz", "wb") as f:
            f.write(text)
    for i in range(3):
        expected += [s.words for s in read_conll(write_conll(tmp_path / "plain.conll", 30, seed=i))]
    cfg = compose_config(
        "finetune",
        ["task=ner", f"data.train_file={tmp_path}/train-*.conll.gz", f"data.eval_file={tmp_path}/train-0.conll.gz"],
    )
    task = build_task(cfg.task, cfg.data)
    task.read()
    assert [s.words for s in task.train] == expected and len(task.eval) == 30
    empty = compose_config("finetune", ["task=ner", f"data.train_file={tmp_path}/dev-*.conll"])
    with pytest.raises(UserError, match=r"data.train_file: the pattern .*dev-\*.conll matches no file"):
        build_task(empty.task, empty.data).read()
