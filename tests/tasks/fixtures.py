"""Small, learnable task data and tiny "pretrained" checkpoints for the fine-tuning tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from lmtrain.data.tokenizer import train_tokenizer
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.loading import model_meta
from lmtrain.models.spec import TransformerSpec
from lmtrain.training.checkpoint import save_checkpoint

PEOPLE = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi"]
PLACES = ["Paris", "London", "Tokyo", "Sydney", "Cairo", "Lima", "Oslo", "Quito"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli"]
VERBS = ["visited", "left", "loved", "photographed", "described"]

# Settings that make a run take seconds: a tiny backbone, a few dozen steps, no progress bar.
FAST = [
    "trainer.progress=false",
    "trainer.max_steps=60",
    "trainer.batch_size=16",
    "trainer.eval_every=30",
    "trainer.log_every=10",
    "optim.lr=3e-3",
    "optim.warmup_steps=5",
    "data.max_seq_len=32",
]
TINY_SCRATCH = [
    "init=scratch",
    "model.size=null",
    "model.n_layers=2",
    "model.d_model=32",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.dropout=0.0",
    "model.attention_dropout=0.0",
    "tokenizer.vocab_size=300",
    "tokenizer.min_frequency=1",
]


def ner_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """One sentence of (word, BIO tag)."""
    person, place, company = rng.choice(PEOPLE), rng.choice(PLACES), rng.choice(COMPANIES)
    kind = rng.randrange(3)
    if kind == 0:
        return [(person, "B-PER"), (rng.choice(VERBS), "O"), (place, "B-LOC"), (".", "O")]
    if kind == 1:
        return [
            (person, "B-PER"),
            ("works", "O"),
            ("for", "O"),
            (company, "B-ORG"),
            ("Corp", "I-ORG"),
            ("in", "O"),
            (place, "B-LOC"),
            (".", "O"),
        ]
    return [
        ("the", "O"),
        (company, "B-ORG"),
        ("Corp", "I-ORG"),
        ("office", "O"),
        ("in", "O"),
        (place, "B-LOC"),
        ("hired", "O"),
        (person, "B-PER"),
        (".", "O"),
    ]


def write_conll(path: Path, n: int, seed: int, extra_columns: bool = False) -> Path:
    """A CoNLL file of ``n`` template sentences in two documents (4 columns like CoNLL-2003 if asked)."""
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- O O" if extra_columns else "-DOCSTART- O", ""]
    for i in range(n):
        if i == n // 2:
            lines += ["-DOCSTART- -X- O O" if extra_columns else "-DOCSTART- O", ""]
        for word, tag in ner_sentence(rng):
            lines.append(f"{word} NN I-NP {tag}" if extra_columns else f"{word} {tag}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_sentiment_tsv(path: Path, n: int, seed: int) -> Path:
    """``sentence<TAB>label`` with a header; the label follows the sentiment word (70% positive)."""
    rng = random.Random(seed)
    good, bad = ["great", "wonderful", "superb", "lovely"], ["awful", "boring", "dreadful", "dull"]
    rows = ["sentence\tlabel"]
    for _ in range(n):
        positive = rng.random() < 0.7
        word = rng.choice(good if positive else bad)
        rows.append(
            f"the {rng.choice(['film', 'show', 'book'])} was {word} and {rng.choice(['long', 'new'])}\t{int(positive)}"
        )
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_pairs_jsonl(path: Path, n: int, seed: int) -> Path:
    """Prompt -> completion pairs where the completion follows from the prompt's first word."""
    rng = random.Random(seed)
    sounds = {"cat": "meow", "dog": "woof", "cow": "moo", "duck": "quack", "owl": "hoot", "sheep": "baa"}
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            animal = rng.choice(list(sounds))
            f.write(
                json.dumps({"prompt": f"the {animal} says", "completion": f" {sounds[animal]} {sounds[animal]}."})
                + "\n"
            )
    return path


def write_task_files(root: Path) -> Path:
    """NER (CoNLL), sentiment (TSV) and prompt/completion (JSON lines) train and dev files in ``root``."""
    write_conll(root / "train.conll", 240, seed=0, extra_columns=True)
    write_conll(root / "dev.conll", 60, seed=1, extra_columns=True)
    write_sentiment_tsv(root / "train.tsv", 200, seed=0)
    write_sentiment_tsv(root / "dev.tsv", 60, seed=1)
    write_pairs_jsonl(root / "pairs.jsonl", 240, seed=0)
    return root


def make_checkpoint(run_dir: Path, causal: bool, texts: list[str]) -> Path:
    """A run directory with a tiny random BERT (or GPT) checkpoint, as `lmtrain pretrain` writes it."""
    from omegaconf import OmegaConf

    from lmtrain.config import TokenizerConfig

    if causal:
        roles = {"eos": "<|endoftext|>", "bos": "<|endoftext|>", "pad": "<|endoftext|>"}
        tok_cfg = TokenizerConfig(kind="bpe", vocab_size=300, min_frequency=1, lowercase=False, special_tokens=roles)
    else:
        roles = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
        tok_cfg = TokenizerConfig(vocab_size=300, min_frequency=1, special_tokens=roles)
    tokenizer = train_tokenizer(texts, OmegaConf.structured(tok_cfg))
    spec = TransformerSpec(
        vocab_size=tokenizer.vocab_size,
        n_layers=2,
        d_model=32,
        n_heads=2,
        d_ff=64,
        max_positions=64,
        causal=causal,
        norm="pre" if causal else "post",
        segment_vocab_size=0 if causal else 2,
        embedding_norm=not causal,
        final_norm=causal,
        dropout=0.0,
        attention_dropout=0.0,
        pad_token_id=tokenizer.id("pad"),
    )
    torch.manual_seed(0)
    model = LanguageModel(spec, ["lm"] if causal else ["mlm", "nsp"])
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(run_dir / "tokenizer.json")
    meta = model_meta(model, "gpt" if causal else "bert", "clm" if causal else "mlm_nsp", tokenizer)
    save_checkpoint(run_dir / "checkpoints", 1, model, meta, None, run_dir / "tokenizer.json")
    return run_dir


def ner_files_and_backbone(root: Path, n_train: int, n_eval: int) -> list[str]:
    """CoNLL train / held-out files under ``root`` and a tiny bidirectional backbone (64 positions) whose tokenizer
    was trained on their words: the ``finetune task=ner`` overrides that name them (``init``, the data files)."""
    write_conll(root / "train.conll", n_train, seed=0)
    write_conll(root / "dev.conll", n_eval, seed=1)
    words = [line.split()[0] for line in (root / "train.conll").read_text().splitlines() if line.strip()]
    backbone = make_checkpoint(
        root / "backbone", causal=False, texts=[" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    )
    return [
        "task=ner",
        f"init={backbone}",
        f"data.train_file={root / 'train.conll'}",
        f"data.eval_file={root / 'dev.conll'}",
    ]
