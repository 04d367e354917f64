"""scripts/bench_whole_run_hf.py and its `transformers` side, scripts/whole_run_transformers.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import bench_whole_run_hf  # noqa: E402
import whole_run_transformers  # noqa: E402

from lmtrain.data.store import index_shards, write_store  # noqa: E402

ROLES = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
SPEC = {
    "vocab_size": 20,
    "n_layers": 1,
    "d_model": 16,
    "n_heads": 2,
    "d_ff": 32,
    "max_positions": 32,
    "activation": "gelu",
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "segment_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "init_std": 0.02,
    "pad_token_id": 0,
}
OBJECTIVE = {"mask_prob": 0.15, "mask_token_prob": 0.8, "random_token_prob": 0.1}
TRAINER = {"max_steps": 2, "batch_size": 4, "grad_accum": 1, "grad_clip": 1.0, "seed": 42}
OPTIM = {
    "lr": 1e-3,
    "weight_decay": 0.01,
    "betas": [0.9, 0.999],
    "eps": 1e-6,
    "schedule": "linear",
    "warmup_steps": None,
    "warmup_ratio": 0.06,
    "min_lr_ratio": 0.0,
    "decay_steps": None,
}


def _pairs(n: int, rng: np.random.Generator) -> tuple[dict[str, list[np.ndarray]], dict[str, list[int]]]:
    """``n`` masked sentence pairs as lmtrain stores them: [CLS] A [SEP] B [SEP], mask id 4, labels -100 elsewhere."""
    seqs: dict[str, list[np.ndarray]] = {"input_ids": [], "token_type_ids": [], "labels": []}
    for _ in range(n):
        a, b = rng.integers(5, 20, size=int(rng.integers(1, 5))), rng.integers(5, 20, size=int(rng.integers(1, 5)))
        ids = np.concatenate([[2], a, [3], b, [3]]).astype(np.int32)
        labels = np.full_like(ids, -100)
        labels[1], ids[1] = ids[1], 4  # the first token of A masked
        seqs["input_ids"].append(ids)
        seqs["labels"].append(labels)
        seqs["token_type_ids"].append(np.asarray([0] * (len(a) + 2) + [1] * (len(b) + 1), dtype=np.int8))
    return seqs, {"next_sentence_label": [int(x) for x in rng.integers(0, 2, size=n)]}


def _lmtrain_run(tmp_path: Path, model_name: str = "bert", objective: str = "mlm_nsp") -> tuple[Path, Path]:
    """A finished run folder (checkpoint's model.json, .hydra/config.yaml, tokenizer.json) and its example cache."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    run, cache = tmp_path / "run", tmp_path / "cache"
    (run / "checkpoints" / "step-2").mkdir(parents=True)
    (run / ".hydra").mkdir()
    model = {"model_name": model_name, "objective": objective, "spec": SPEC, "tokenizer_roles": ROLES}
    (run / "checkpoints" / "step-2" / "model.json").write_text(json.dumps({**model, "objective_config": OBJECTIVE}))
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"trainer": TRAINER, "optim": OPTIM}))
    vocab = {**{token: i for i, token in enumerate(ROLES.values())}, **{f"w{i}": i for i in range(5, 20)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(run / "tokenizer.json"))
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("eval", 5)):
        folder = cache / "examples" / "0123456789abcdef" / split
        write_store(folder / "chunk-000000", *_pairs(n, rng), {"objective": "mlm_nsp"})
        index_shards(folder, ["chunk-000000"], {"objective": "mlm_nsp"})
    return run, cache


def test_the_job_carries_the_runs_sizes_tokenizer_examples_and_recipe(tmp_path):
    run, cache = _lmtrain_run(tmp_path)
    job = bench_whole_run_hf.transformers_job(run, cache, tmp_path / "out", 1)
    assert job["examples"] == str(cache / "examples" / "0123456789abcdef")
    assert job["tokenizer"] == str(run / "tokenizer.json")
    assert job["special_tokens"]["mask_token"] == "[MASK]"
    model = job["model"]
    assert (model["hidden_size"], model["num_hidden_layers"], model["intermediate_size"]) == (16, 1, 32)
    training = job["training"]
    assert (training["max_steps"], training["per_device_train_batch_size"], training["save_steps"]) == (2, 4, 2)
    assert (training["learning_rate"], training["warmup_steps"], training["max_grad_norm"]) == (1e-3, 0.06, 1.0)


def test_a_run_that_is_not_bert_with_mlm_nsp_is_refused(tmp_path):
    run, cache = _lmtrain_run(tmp_path, objective="mlm")
    with pytest.raises(SystemExit, match="BertForPreTraining \\(MLM \\+ NSP\\).*trained bert with mlm"):
        bench_whole_run_hf.transformers_job(run, cache, tmp_path / "out", 1)


def test_the_pairs_are_read_back_unmasked(tmp_path):
    _, cache = _lmtrain_run(tmp_path)
    pairs = whole_run_transformers.SentencePairs(cache / "examples" / "0123456789abcdef" / "train")
    assert len(pairs) == 12
    first = pairs[0]
    assert 4 not in first["input_ids"] and first["input_ids"][0] == 2 and first["input_ids"][-1] == 3
    assert len(first["token_type_ids"]) == len(first["input_ids"]) and first["next_sentence_label"] in (0, 1)


def test_transformers_phases_are_the_gaps_between_its_marks():
    log = "phase start-up 102.0\n{'eval_loss': 7.1}\nphase data 102.5\nphase training 130.0\nphase assembly 104.0\n"
    seconds = bench_whole_run_hf.transformers_seconds(log, 100.0, 131.0)
    expected = {"start-up": 2.0, "data": 0.5, "assembly": 1.5, "training": 26.0, "exit": 1.0, "total": 31.0}
    assert seconds == pytest.approx(expected)


def test_the_table_gives_the_ratio_where_both_sides_have_the_phase(capsys):
    lmtrain = {"start-up": 1.5, "preflight": 0.7, "training": 18.0, "exit": 0.3, "total": 20.5}
    transformers = {"start-up": 4.0, "data": 0.5, "training": 36.0, "exit": 0.5, "total": 41.0}
    bench_whole_run_hf.print_table({"lmtrain": [lmtrain], "transformers": [transformers]})
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert rows["total"] == ["20.50", "41.00", "2.00"] and rows["preflight"] == ["0.70", "-"]
    assert rows["data"] == ["-", "0.50"]
    assert lines[-1] == "whole run, each pair back to back: 2.00 (median 2.00)"


def test_the_transformers_side_trains_checkpoints_and_evaluates_a_tiny_bert(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")  # transformers' Trainer needs it
    run, cache = _lmtrain_run(tmp_path)
    job = bench_whole_run_hf.transformers_job(run, cache, tmp_path / "out", 1)
    job_file = tmp_path / "job.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    job_file.write_text(json.dumps(job))
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "whole_run_transformers.py"), str(job_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    marks = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("phase ")]
    assert marks == ["start-up", "data", "assembly", "training", "save", "evaluation"]
    assert (tmp_path / "out" / "checkpoint-2" / "model.safetensors").is_file()
