"""Tokenizers users already have: slow-tokenizer files converted as transformers converts them, tokenizer.path
folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from lmtrain.data.hf_tokenizer import load_hf_tokenizer, load_tokenizer_source
from lmtrain.data.pretraining import prepare_pretraining_data
from lmtrain.errors import UserError
from tests.conftest import compose_config, objective_plug, write_corpus

transformers = pytest.importorskip("transformers")

TEXTS = [
    "The farmer visited the OLD barn, naïve café!",
    "Ünïcödé 北京 text: 3.5 km?",
    "  spaced   out  ",
    "A [MASK] and <mask> and <|endoftext|> in text.",
]


def wordpiece_folder(folder: Path, corpus: Path, lowercase: bool) -> Path:
    """A folder with only ``vocab.txt`` (and tokenizer_config.json), as BERT's slow tokenizer saves it."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(
        corpus.read_text().splitlines(),
        trainers.WordPieceTrainer(vocab_size=200, min_frequency=1, special_tokens=specials),
    )
    folder.mkdir()
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lowercase}))
    return folder


def bpe_folder(folder: Path, corpus: Path, specials: list[str]) -> Path:
    """A folder with only ``vocab.json`` + ``merges.txt``, as GPT-2's / RoBERTa's slow tokenizers save them."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator(
        corpus.read_text().splitlines(),
        trainers.BpeTrainer(
            vocab_size=400,
            min_frequency=1,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    folder.mkdir()
    tokenizer.model.save(str(folder))
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt", n_docs=40)


@pytest.mark.parametrize("lowercase", [True, False])
def test_vocab_txt_gives_the_ids_of_transformers_bert_tokenizer(corpus, tmp_path, lowercase):
    folder = wordpiece_folder(tmp_path / "bert", corpus, lowercase)
    ours = load_hf_tokenizer(folder)
    theirs = transformers.BertTokenizer(str(folder / "vocab.txt"), do_lower_case=lowercase)
    for text in TEXTS:
        assert ours.encode_batch([text])[0] == theirs.encode(text, add_special_tokens=False), text
    assert ours.tokenizer.encode("a b", "c").ids == theirs.encode("a b", "c")  # [CLS] a b [SEP] c [SEP]
    assert ours.roles == {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]", "unk": "[UNK]"}


@pytest.mark.parametrize("family", ["gpt2", "roberta"])
def test_vocab_json_and_merges_give_the_ids_of_transformers(corpus, tmp_path, family):
    specials = ["<|endoftext|>"] if family == "gpt2" else ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    folder = bpe_folder(tmp_path / family, corpus, specials)
    ours = load_hf_tokenizer(folder)
    slow = transformers.GPT2Tokenizer if family == "gpt2" else transformers.RobertaTokenizer
    theirs = slow(str(folder / "vocab.json"), str(folder / "merges.txt"))
    # RoBERTa's <mask> takes the space before it (lstrip, as in roberta-base's tokenizer.json): compared below
    for text in TEXTS[:3] if family == "roberta" else TEXTS:
        assert ours.encode_batch([text])[0] == theirs.encode(text, add_special_tokens=False), text
    assert ours.decode(ours.encode_batch([TEXTS[0]])[0]) == TEXTS[0]
    if family == "gpt2":
        assert ours.roles == {"bos": "<|endoftext|>", "eos": "<|endoftext|>", "pad": "<|endoftext|>"}
    else:
        assert ours.tokenizer.encode("a b", "c").ids == theirs.encode("a b", "c")  # <s> A </s></s> B </s>
        assert ours.encode_batch(["The <mask> sat"])[0] == [
            *ours.encode_batch(["The"])[0],
            ours.id("mask"),
            *ours.encode_batch([" sat"])[0],
        ]


def test_tokenizer_path_folder_with_vocab_txt_feeds_pretraining(corpus, tmp_path):
    folder = wordpiece_folder(tmp_path / "bert", corpus, lowercase=True)
    cfg = compose_config(
        "pretrain",
        [
            "debug=tiny",
            "data=text",
            f"data.train_files=[{corpus}]",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"tokenizer.path={folder}",
        ],
    )
    data = prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))
    expected = load_hf_tokenizer(folder)
    assert data.tokenizer.tokenizer.get_vocab() == expected.tokenizer.get_vocab()
    assert data.tokenizer_path.is_file() and data.tokenizer_path.is_relative_to(tmp_path / "cache")
    ids = [int(i) for n in range(min(20, len(data.train))) for i in data.train[n]["input_ids"]]
    assert ids and max(ids) < expected.vocab_size and expected.id("cls") in ids
    again = prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))
    assert again.from_cache and again.tokenizer_path == data.tokenizer_path


def test_a_tokenizer_file_that_pads_and_cuts_every_text_does_neither_in_lmtrain(corpus, tmp_path):
    """A Hugging Face tokenizer.json may pad to and cut at a fixed length (MiniLM's: 128); given as
    tokenizer.path, it would pad every pretraining text with [PAD] and drop the rest of a long one."""
    from tokenizers import Tokenizer

    from lmtrain.data.tokenizer import TextTokenizer

    saved = load_hf_tokenizer(wordpiece_folder(tmp_path / "bert", corpus, lowercase=True)).tokenizer
    saved.enable_padding(length=16, pad_token="[PAD]", pad_id=saved.token_to_id("[PAD]"))
    saved.enable_truncation(max_length=16)
    path = tmp_path / "padding-tokenizer.json"
    saved.save(str(path))
    assert len(Tokenizer.from_file(str(path)).encode("the cat").ids) == 16  # the file itself pads
    long_text = " ".join(["the cat sat on the mat"] * 10)
    for tokenizer in (TextTokenizer.from_file(path, {"pad": "[PAD]"}), load_tokenizer_source(str(path), {})):
        short, long = tokenizer.encode_batch(["the cat", long_text])
        assert 0 < len(short) < 16 and saved.token_to_id("[PAD]") not in short
        assert len(long) > 16 and len(long) == len(tokenizer.encode_words([long_text])[0][0])


def test_a_folder_without_a_tokenizer_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no tokenizer: expected tokenizer.json, a WordPiece vocab.txt"):
        load_tokenizer_source(str(tmp_path / "empty"), {})
