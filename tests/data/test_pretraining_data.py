"""Corpus readers and the cached pipeline: text / JSONL / blank-line documents, tokenizer reuse."""

from __future__ import annotations

import json

from lmtrain.data.corpus import load_documents, split_sentences
from lmtrain.data.pretraining import prepare_pretraining_data
from tests.conftest import compose_config, write_corpus


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
    cache = str(tmp_path / "hf")
    assert load_documents([lines], cache_dir=cache) == [["One doc.", "Two sentences."], ["Second doc here."]]
    assert load_documents([blank], documents="blank_line", cache_dir=cache) == [
        ["First line of doc one.", "Second line."], ["Doc two."]]
    assert load_documents([jsonl], text_field="body", cache_dir=cache) == [["A b c.", "D e."], ["F g."]]


def test_second_run_reuses_tokenizer_and_examples(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", n_docs=30)
    cfg = _cfg(tmp_path, f"data.train_files=[{corpus}]")
    first = prepare_pretraining_data(cfg.data, cfg.tokenizer, cfg.objective)
    second = prepare_pretraining_data(cfg.data, cfg.tokenizer, cfg.objective)
    assert not first.from_cache and second.from_cache
    assert first.tokenizer_path == second.tokenizer_path
    changed = _cfg(tmp_path, f"data.train_files=[{corpus}]", "data.max_seq_len=48")
    assert not prepare_pretraining_data(changed.data, changed.tokenizer, changed.objective).from_cache


def test_existing_tokenizer_json_is_used_as_is(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", n_docs=30)
    cfg = _cfg(tmp_path, f"data.train_files=[{corpus}]")
    trained = prepare_pretraining_data(cfg.data, cfg.tokenizer, cfg.objective)
    given = _cfg(tmp_path, f"data.train_files=[{corpus}]", f"tokenizer.path={trained.tokenizer_path}",
                 "tokenizer.vocab_size=50")
    data = prepare_pretraining_data(given.data, given.tokenizer, given.objective)
    assert data.tokenizer.vocab_size == trained.tokenizer.vocab_size  # vocab_size ignored: nothing trained
    assert data.tokenizer_path == trained.tokenizer_path
