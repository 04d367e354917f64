"""Corpus readers and the cached pipeline: text / JSONL / blank-line documents, tokenizer reuse."""

from __future__ import annotations

import json

import numpy as np

from lmtrain.data import pretraining
from lmtrain.data.corpus import Corpus, load_documents, split_documents, split_sentences
from lmtrain.data.pretraining import SplitCorpus, prepare_pretraining_data
from tests.conftest import compose_config, objective_plug, write_corpus


def _cfg(tmp_path, *extra):
    return compose_config("pretrain", ["debug=tiny", "data=text", f"data.cache_dir={tmp_path / 'cache'}", *extra])


def test_sentence_splitter_keeps_every_character():
    text = 'Mr Smith arrived at 4:00pm. "It burned," he said! Was it 3.5 km? Yes.'
    sentences = split_sentences(text)
    assert sentences == ["Mr Smith arrived at 4:00pm.", '"It burned," he said!', "Was it 3.5 km?", "Yes."]


def test_text_jsonl_and_blank_line_documents(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("One doc. Two sentences.\nSecond doc here.\n")
    blank = tmp_path / "blank.txt"
    blank.write_text("First line of doc one.\nSecond line.\n\nDoc two.\n")
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("\n".join(json.dumps({"body": t}) for t in ["A b c. D e.", "F g."]) + "\n")
    assert load_documents([lines]) == [["One doc.", "Two sentences."], ["Second doc here."]]
    assert load_documents([blank], documents="blank_line") == [["First line of doc one.", "Second line."], ["Doc two."]]
    assert load_documents([jsonl], text_field="body") == [["A b c.", "D e."], ["F g."]]


def test_second_run_reuses_tokenizer_and_examples(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", n_docs=30)
    cfg = _cfg(tmp_path, f"data.train_files=[{corpus}]")
    first = prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))
    second = prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))
    assert not first.from_cache and second.from_cache
    assert first.tokenizer_path == second.tokenizer_path
    changed = _cfg(tmp_path, f"data.train_files=[{corpus}]", "data.max_seq_len=48")
    assert not prepare_pretraining_data(changed.data, changed.tokenizer, objective_plug(changed.objective)).from_cache


def test_existing_tokenizer_json_is_used_as_is(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", n_docs=30)
    cfg = _cfg(tmp_path, f"data.train_files=[{corpus}]")
    trained = prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))
    given = _cfg(
        tmp_path, f"data.train_files=[{corpus}]", f"tokenizer.path={trained.tokenizer_path}", "tokenizer.vocab_size=50"
    )
    data = prepare_pretraining_data(given.data, given.tokenizer, objective_plug(given.objective))
    assert data.tokenizer.vocab_size == trained.tokenizer.vocab_size  # vocab_size ignored: nothing trained
    assert data.tokenizer_path == trained.tokenizer_path


def test_chunks_hold_out_the_same_documents_as_the_whole_corpus(tmp_path):
    corpus_file = write_corpus(tmp_path / "c.txt", n_docs=40)
    corpus = Corpus.from_files([corpus_file])
    whole_train, whole_eval = split_documents(list(corpus), 0.2, seed=3)
    split = SplitCorpus(corpus, None, 0.2, seed=3)
    for max_chars in (1, 500, 10**9):  # a document per chunk, a few, one
        parts = list(split.chunks(max_chars))
        assert [d for name, docs in parts if name == "train" for d in docs] == whole_train
        assert [d for name, docs in parts if name == "eval" for d in docs] == whole_eval
    assert len(list(split.chunks(500))) > 4 and list(split.train_texts()) == [" ".join(d) for d in whole_train]


def test_a_corpus_larger_than_a_chunk_streams_into_one_store(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "c.txt", n_docs=60)
    cfg = _cfg(tmp_path, f"data.train_files=[{corpus}]", "model=gpt", "data.max_seq_len=32")
    whole = prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))
    monkeypatch.setattr(pretraining, "CHUNK_CHARS", 2000)  # about 5 documents a chunk
    chunked_cfg = _cfg(
        tmp_path,
        f"data.train_files=[{corpus}]",
        "model=gpt",
        "data.max_seq_len=32",
        f"tokenizer.path={whole.tokenizer_path}",
        f"data.cache_dir={tmp_path / 'cache2'}",
    )
    chunked = prepare_pretraining_data(chunked_cfg.data, chunked_cfg.tokenizer, objective_plug(chunked_cfg.objective))
    n_chunks = len(list(SplitCorpus(Corpus.from_files([corpus]), None, 0.1, 0).chunks(2000))) // 2
    assert n_chunks > 5
    # every chunk drops only its last partial block; the blocks are otherwise the same stream
    assert len(whole.train) - n_chunks <= len(chunked.train) <= len(whole.train)
    assert np.array_equal(chunked.train[0]["input_ids"], whole.train[0]["input_ids"])
    assert all(len(chunked.train[i]["input_ids"]) == 32 for i in range(len(chunked.train)))


def test_split_long_text_cuts_at_sentence_ends_then_white_space():
    from lmtrain.data.corpus import split_long_text

    text = "One two three. Four five six. Seven eight nine. Ten."
    pieces = split_long_text(text, 20)
    assert pieces == ["One two three.", "Four five six.", "Seven eight nine.", "Ten."]
    assert all(len(p) <= 20 for p in pieces)
    words = "alpha beta gamma delta epsilon zeta eta theta"  # no sentence end: cut at spaces
    assert split_long_text(words, 12) == ["alpha beta", "gamma delta", "epsilon", "zeta eta", "theta"]
    assert split_long_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]  # no space: cut hard
    assert split_long_text(text, len(text)) == [text]


def test_an_over_long_document_is_split_into_pieces_with_a_warning(tmp_path, caplog):
    path = tmp_path / "c.txt"
    long_doc = " ".join(f"Sentence number {i} is here." for i in range(40))
    path.write_text("A short document.\n" + long_doc + "\nAnother short one.\n")
    with caplog.at_level("WARNING"):
        corpus = Corpus.from_files([path], max_document_chars=200)
        docs = list(corpus)
    assert f"document 2 has {len(long_doc)} characters; it is split into 6 pieces of at most 200" in caplog.text
    assert docs[0] == ["A short document."] and docs[-1] == ["Another short one."]
    pieces = docs[1:-1]
    assert len(pieces) == len(corpus) - 2 == 6 and all(sum(len(s) + 1 for s in p) <= 201 for p in pieces)
    assert [s for p in pieces for s in p] == split_sentences(long_doc)  # every sentence, in order


def test_two_processes_sharing_a_cache_prepare_the_examples_once(tmp_path, caplog):
    """What two nodes with one shared data.cache_dir do: both ask for the examples of one tokenizer at once;
    the lock lets one write them and the other read the finished stores."""
    import logging
    import threading

    from lmtrain.data.pretraining import PretrainingPreparation, read_tokenizer_text

    corpus = write_corpus(tmp_path / "c.txt", n_docs=30)
    cfg = _cfg(tmp_path, f"data.train_files=[{corpus}]")
    recipe = objective_plug(cfg.objective)
    tokenizer, path = PretrainingPreparation(cfg.data, cfg.tokenizer).tokenizer()
    text, results = read_tokenizer_text(path), []

    def prepare():
        results.append(PretrainingPreparation(cfg.data, cfg.tokenizer).examples(tokenizer, text, recipe))

    with caplog.at_level(logging.INFO, logger="lmtrain.data.pretraining"):
        threads = [threading.Thread(target=prepare) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 2 and sorted(r.from_cache for r in results) == [False, True]
    assert sum(r.message.startswith("tokenizing") for r in caplog.records) == 1
    assert results[0].train.path == results[1].train.path
    assert results[0].train.content_digest() == results[1].train.content_digest()
