"""A long run of text without white space (a pre-token of thousands of characters) is cut into pieces before
the tokenizer is trained on it, and cut the same way whenever the tokenizer tokenizes text afterwards: training
stays fast (it is quadratic in the length of a pre-token) and the log says how many were cut."""

from __future__ import annotations

import logging

import pytest

from lmtrain.data.pretraining import prepare_pretraining_data
from lmtrain.data.tokenizer import train_tokenizer
from tests.conftest import compose_config, objective_plug, write_corpus

MAX_PRETOKEN_CHARS = 100  # the longest pre-token a tokenizer trains on (WordPiece read any longer one as [UNK])


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_a_long_pre_token_is_cut_in_training_and_in_every_later_encoding(tmp_path, caplog, kind):
    cfg = compose_config("pretrain", ["debug=tiny", f"tokenizer.kind={kind}", "tokenizer.vocab_size=300"])
    texts = write_corpus(tmp_path / "c.txt", n_docs=20).read_text().splitlines()
    run = "x" * (2 * MAX_PRETOKEN_CHARS + 50)
    with caplog.at_level(logging.INFO, logger="lmtrain.data"):
        tokenizer = train_tokenizer([*texts, f"{run} the end.", f"{run}, again."], cfg.tokenizer)
    unit = "characters" if kind == "wordpiece" else "bytes"  # byte-level BPE's pre-tokens are bytes
    assert (
        f"2 words of more than {MAX_PRETOKEN_CHARS} {unit} (the longest {len(run)}) were cut into pieces "
        f"of {MAX_PRETOKEN_CHARS} {unit}"
    ) in caplog.text
    pieces = tokenizer.tokenizer.pre_tokenizer.pre_tokenize_str(run)
    assert [len(piece) for piece, _ in pieces] == [MAX_PRETOKEN_CHARS, MAX_PRETOKEN_CHARS, 50]
    # what training saw is what encoding sees: the run tokenizes as its pieces do, one by one
    [whole] = tokenizer.encode_batch([run])
    assert whole == [i for piece, _ in pieces for i in tokenizer.encode_batch([piece])[0]]
    assert "[UNK]" not in tokenizer.tokenizer.decode(whole, skip_special_tokens=False)  # WordPiece cut 101+ to [UNK]
    ordinary = tokenizer.tokenizer.pre_tokenizer.pre_tokenize_str("The farmer visited the old barn.")
    assert len(ordinary) == 7  # ordinary words are left alone


def test_a_corpus_with_a_hundred_thousand_character_word_prepares_in_seconds(tmp_path, caplog):
    corpus = write_corpus(tmp_path / "c.txt", n_docs=30)
    with open(corpus, "a", encoding="utf-8") as f:
        f.write("a" * 100_000 + "\n")  # WordPiece training took 11 s on it, and 25 minutes on a million
    cfg = compose_config(
        "pretrain", ["debug=tiny", "data=text", f"data.train_files=[{corpus}]", f"data.cache_dir={tmp_path / 'cache'}"]
    )
    with caplog.at_level(logging.INFO, logger="lmtrain.data"):
        data = prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))
    assert "1 word of more than 100 characters (the longest 100000) was cut" in caplog.text
    assert len(data.train) > 0
