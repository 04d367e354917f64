"""Tiny checkpoints in the run-directory layout, written in-process (no training needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmtrain.config import TokenizerConfig
from lmtrain.data.tokenizer import train_tokenizer
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.loading import model_meta
from lmtrain.models.spec import TransformerSpec
from lmtrain.run_folder.layout import TOKENIZER_FILE
from lmtrain.training.checkpoint import save_checkpoint
from tests.conftest import write_corpus

GPT_ROLES = {"eos": "<|endoftext|>", "bos": "<|endoftext|>", "pad": "<|endoftext|>"}
GPT = dict(
    causal=True,
    norm="pre",
    segment_vocab_size=0,
    activation="gelu_tanh",
    embedding_norm=False,
    final_norm=True,
    layer_norm_eps=1e-5,
)


def make_run(path: Path, corpus: Path, tok_cfg: TokenizerConfig, heads: list[str], objective: str, **switches) -> Path:
    """A run directory with one checkpoint of an untrained tiny model and a tokenizer trained on ``corpus``."""
    tokenizer = train_tokenizer(corpus.read_text().splitlines(), tok_cfg)
    torch.manual_seed(0)
    spec = TransformerSpec(
        vocab_size=tokenizer.vocab_size,
        n_layers=1,
        d_model=16,
        n_heads=2,
        d_ff=32,
        max_positions=64,
        pad_token_id=tokenizer.id("pad"),
        **switches,
    )
    model = LanguageModel(spec, heads)
    path.mkdir(parents=True)
    tokenizer.save(path / TOKENIZER_FILE)
    save_checkpoint(
        path / "checkpoints", 1, model, model_meta(model, path.name, objective, tokenizer), None, path / TOKENIZER_FILE
    )
    return path


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Path]:
    """``corpus`` (a text file) and run directories ``gpt`` (clm), ``bert`` (mlm_nsp), ``nsp`` (no lm/mlm head)."""
    root = tmp_path_factory.mktemp("runs")
    corpus = write_corpus(root / "corpus.txt", n_docs=40)
    bpe = TokenizerConfig(kind="bpe", vocab_size=300, min_frequency=1, lowercase=False, special_tokens=GPT_ROLES)
    wordpiece = TokenizerConfig(kind="wordpiece", vocab_size=200, min_frequency=1)
    return {
        "corpus": corpus,
        "gpt": make_run(root / "gpt", corpus, bpe, ["lm"], "clm", **GPT),
        "bert": make_run(root / "bert", corpus, wordpiece, ["mlm", "nsp"], "mlm_nsp"),
        "nsp": make_run(root / "nsp", corpus, wordpiece, ["nsp"], "mlm_nsp"),
    }
