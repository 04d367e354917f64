"""Corpora: bundled and user files, JSONL, tokenisers, restartable streaming, clear errors."""

import json
from collections import Counter

import numpy as np
import pytest

from lmtrain.embeddings.corpus import WIKI_EXCERPT, build_corpus, bundled_paths, get_tokenizer
from lmtrain.embeddings.vocabulary import build_vocabulary
from lmtrain.errors import UserError


def test_bundled_corpora():
    assert [p.name for p in bundled_paths("lee")] == ["lee_background.cor"]
    assert [p.name for p in bundled_paths("lee.cor")] == ["lee.cor"]
    assert [p.name for p in bundled_paths("lee_wiki")] == ["lee_background.cor", WIKI_EXCERPT]
    with pytest.raises(UserError, match="embed.corpus=nonsense"):
        bundled_paths("nonsense")


def test_lee_wiki_reads_the_wikipedia_articles_as_text():
    corpus = build_corpus("lee_wiki", [], "simple_preprocess")
    docs = list(corpus)
    assert len(docs) == 300 + 103  # Lee's lines, then the Wikipedia articles
    assert sum(len(d) for d in docs) > 400_000
    assert not any(word in ("ref", "http", "xml") for word, _ in Counter(sum(docs[300:], [])).most_common(50))
    assert list(corpus) == docs  # a second pass gives the same documents


def test_tokenizers():
    text = "The U.S. economy grew 3% in 2001, didn't it?"
    assert get_tokenizer("simple_preprocess")(text) == ["the", "economy", "grew", "in", "didn", "it"]
    assert get_tokenizer("lower")(text)[:3] == ["the", "u.s.", "economy"]
    assert get_tokenizer("lower_strip_punct")(text) == [
        "the",
        "u.s",
        "economy",
        "grew",
        "3",
        "in",
        "2001",
        "didn't",
        "it",
    ]
    with pytest.raises(UserError, match="embed.tokenize=bpe"):
        get_tokenizer("bpe")


def test_text_and_jsonl_files_stream_again_on_every_pass(tmp_path):
    (tmp_path / "a.txt").write_text("one two three\n\nfour five\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "six seven"}) + "\n\n")
    corpus = build_corpus("lee", [str(tmp_path / "a.txt"), str(tmp_path / "*.jsonl")], "lower", text_field="body")
    expected = [["one", "two", "three"], ["four", "five"], ["six", "seven"]]
    assert list(corpus) == expected
    assert list(corpus) == expected  # restartable: re-reads the files


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="missing.txt' does not exist"):
        build_corpus("lee", [str(tmp_path / "missing.txt")], "lower")
    with pytest.raises(UserError, match="no file matches"):
        build_corpus("lee", [str(tmp_path / "*.txt")], "lower")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{oops\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2 is not valid JSON"):
        list(build_corpus("lee", [str(bad)], "lower"))
    bad.write_text('{"body": "no text field"}\n')
    with pytest.raises(UserError, match="embed.text_field"):
        list(build_corpus("lee", [str(bad)], "lower"))


def test_vocabulary_cut_order_and_errors():
    docs = [["b", "a", "c", "a"], ["b", "a", "d"]]
    vocab = build_vocabulary(docs, min_count=2, max_vocab=None, source="x")
    assert vocab.words == ["a", "b"] and list(vocab.counts) == [3, 2] and vocab.total_tokens == 7
    assert build_vocabulary(docs, 1, 3, "x").words == ["a", "b", "c"]  # ties alphabetical
    with pytest.raises(UserError, match=r"no word occurs at least min_count=4 times in x.txt"):
        build_vocabulary(docs, 4, None, "x.txt")
    with pytest.raises(UserError, match="no words after tokenisation"):
        build_vocabulary([[], []], 1, None, "x.txt")
    assert isinstance(vocab.counts, np.ndarray)
