"""Data files: globs (sorted), folders, gzip / bz2 / xz text and Parquet read like plain files."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import pytest

from lmtrain.data.files import check_data_file, expand_paths
from lmtrain.data.pretraining import prepare_pretraining_data
from lmtrain.data.sources import corpus_source
from lmtrain.errors import UserError
from tests.conftest import compose_config, objective_plug, write_corpus


def test_globs_are_sorted_and_folders_give_their_data_files(tmp_path, monkeypatch):
    for name in ("b.txt", "a.txt", "c.jsonl.gz", "notes.md", "sub/d.txt", ".hidden/e.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    monkeypatch.chdir(tmp_path)
    assert expand_paths(["*.txt"], "data.train_files") == [
        tmp_path.joinpath(n).relative_to(tmp_path) for n in ("a.txt", "b.txt")
    ]
    assert expand_paths([str(tmp_path)], "data.train_files") == [
        tmp_path / n for n in ("a.txt", "b.txt", "c.jsonl.gz", "sub/d.txt")
    ]
    assert [p.name for p in expand_paths(["**/*.txt", "b.txt"], "k")] == ["a.txt", "b.txt", "d.txt"]  # each once


def test_an_empty_glob_or_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(UserError, match=r"data.train_files: the pattern .*corpus/\*.txt matches no file"):
        expand_paths([f"{tmp_path}/corpus/*.txt"], "data.train_files")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"data.eval_files: the folder .*empty holds no data files"):
        expand_paths([str(tmp_path / "empty")], "data.eval_files")


def _compressed(tmp_path, docs: list[str]) -> list:
    """The documents in four files: gzip text, bzip2 JSON lines, xz text and Parquet."""
    import datasets

    half = len(docs) // 4
    parts = [docs[:half], docs[half : 2 * half], docs[2 * half : 3 * half], docs[3 * half :]]
    with gzip.open(tmp_path / "a.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(parts[0]) + "\n")
    with bz2.open(tmp_path / "b.jsonl.bz2", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": d}) + "\n" for d in parts[1])
    with lzma.open(tmp_path / "c.txt.xz", "wt", encoding="utf-8") as f:
        f.write("\n".join(parts[2]) + "\n")
    datasets.Dataset.from_dict({"text": parts[3], "n": list(range(len(parts[3])))}).to_parquet(
        str(tmp_path / "d.parquet")
    )
    return [tmp_path / name for name in ("a.txt.gz", "b.jsonl.bz2", "c.txt.xz", "d.parquet")]


def test_compressed_and_parquet_files_read_as_plain_text(tmp_path):
    docs = write_corpus(tmp_path / "plain.txt", n_docs=40).read_text().splitlines()
    (tmp_path / "parts").mkdir()
    _compressed(tmp_path / "parts", docs)
    common = ["debug=tiny", "model=gpt", "data=text", "data.max_seq_len=32"]
    plain = compose_config(
        "pretrain", [*common, f"data.train_files=[{tmp_path / 'plain.txt'}]", f"data.cache_dir={tmp_path / 'c1'}"]
    )
    whole = prepare_pretraining_data(plain.data, plain.tokenizer, objective_plug(plain.objective))
    parts = compose_config(
        "pretrain",
        [
            *common,
            f"data.train_files=[{tmp_path / 'parts'}/*]",
            f"data.cache_dir={tmp_path / 'c2'}",
            f"tokenizer.path={whole.tokenizer_path}",
        ],
    )
    train, _ = corpus_source(parts.data).open()
    assert [" ".join(d) for d in train] == [" ".join(d) for d in corpus_source(plain.data).open()[0]]
    split = prepare_pretraining_data(parts.data, parts.tokenizer, objective_plug(parts.objective))
    assert [split.train[i]["input_ids"].tolist() for i in range(len(split.train))] == [
        whole.train[i]["input_ids"].tolist() for i in range(len(whole.train))
    ]


def test_a_damaged_or_non_utf8_compressed_file_is_a_user_error(tmp_path):
    (tmp_path / "bad.txt.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match=r"data.train_files: .*bad.txt.gz could not be decompressed"):
        check_data_file(tmp_path / "bad.txt.gz", "data.train_files")
    with gzip.open(tmp_path / "latin.txt.gz", "wb") as f:
        f.write("ok\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin.txt.gz is not UTF-8 text \(invalid byte at line 2\)"):
        check_data_file(tmp_path / "latin.txt.gz", "data.train_files")


def test_fine_tuning_files_may_be_a_folder_but_not_parquet(tmp_path):
    from lmtrain.tasks.files import data_files

    (tmp_path / "ner").mkdir()
    for name in ("b.conll", "a.conll.bz2"):
        (tmp_path / "ner" / name).write_bytes(
            bz2.compress(b"Alice B-PER\n") if name.endswith("bz2") else b"Bob B-PER\n"
        )
    cfg = compose_config("finetune", ["task=ner", f"data.train_file={tmp_path / 'ner'}"])
    train, held_out = data_files(cfg.data)
    assert [p.name for p in train] == ["a.conll.bz2", "b.conll"] and held_out is None
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    parquet = compose_config("finetune", ["task=ner", f"data.train_file={tmp_path / 't.parquet'}"])
    with pytest.raises(UserError, match=r"t.parquet is a Parquet file; .* data.source=hf data.path="):
        data_files(parquet.data)


def test_many_local_files_are_read_directly_with_progress_and_leave_no_lock_files(tmp_path, monkeypatch, caplog):
    """A glob over many files: read straight from the files (a `datasets` table per file took 37 ms, sent a Hub
    request and left three lock files each), with a line saying what is being read."""
    import logging
    import socket

    import datasets

    docs = write_corpus(tmp_path / "all.txt", n_docs=300).read_text().splitlines()
    (tmp_path / "many").mkdir()
    for number, doc in enumerate(docs):
        (tmp_path / "many" / f"doc{number:04d}.txt").write_text(doc + "\n")

    def refused(*args, **kwargs):
        raise AssertionError("`datasets` was asked to read a local file")

    lookups = []
    monkeypatch.setattr(datasets, "load_dataset", refused)
    monkeypatch.setattr(datasets, "load_dataset_builder", refused)
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *args, **kwargs: lookups.append(host) or refused())
    cfg = compose_config(
        "pretrain",
        [
            "debug=tiny",
            "data=text",
            f"data.train_files=[{tmp_path / 'many'}/*.txt]",
            f"data.cache_dir={tmp_path / 'cache'}",
        ],
    )
    with caplog.at_level(logging.INFO, logger="lmtrain.data"):
        data = prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))
    assert len(data.train) > 0 and not lookups
    assert "checking 300 files (" in caplog.text and "of data.train_files" in caplog.text
    locks = sorted(str(p.relative_to(tmp_path / "cache").parent) for p in (tmp_path / "cache").rglob("*.lock"))
    assert locks == ["examples", "tokenizers"]  # lmtrain's own, one per cache entry


def test_json_files_errors_name_the_file_and_line(tmp_path):
    from lmtrain.data.corpus import load_documents

    array = tmp_path / "array.json"
    array.write_text(json.dumps([{"text": "One. Two."}, {"text": "Three."}, {"other": 1}]))
    assert load_documents([array]) == [["One.", "Two."], ["Three."]]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n\n{"text": "cut off\n')
    with pytest.raises(
        UserError,
        match=r"broken.jsonl line 3 is not valid JSON \(Unterminated string starting at: column 10\)\. Each line must "
        r"be one JSON object such as \{\"text\": \"...\"\}",
    ):
        load_documents([broken])
    listed = tmp_path / "listed.jsonl"
    listed.write_text('{"text": "fine"}\n["a", "list"]\n')
    with pytest.raises(UserError, match=r"listed.jsonl line 2 is not a JSON object"):
        load_documents([listed])
    other = tmp_path / "other.jsonl"
    other.write_text('{"body": "a"}\n{"body": "b", "id": 2}\n')
    with pytest.raises(
        UserError,
        match=r"data.text_field=text: .*other.jsonl has no field 'text'; its objects have "
        r"the fields body, id\. Set data.text_field",
    ):
        load_documents([other])


@pytest.mark.parametrize("documents", ["line", "blank_line"])
def test_text_files_are_cut_into_documents_as_datasets_cut_them(tmp_path, monkeypatch, documents):
    """Reading a file directly gives the documents `datasets`' text builder gave (caches keyed by the file stay
    valid), line ends of every kind and chunk boundaries included."""
    import datasets

    from lmtrain.data import file_texts

    monkeypatch.setattr(file_texts, "_CHUNK", 7)
    path = tmp_path / "odd.txt"
    path.write_bytes("One.\r\nTwo\rthree.\n\nFour\x0bfive\u2028six.\n\n\nSeven.\n \nEight \n\n\n\nNine".encode())
    sample_by = "paragraph" if documents == "blank_line" else "line"
    expected = datasets.load_dataset(
        "text", data_files=str(path), split="train", sample_by=sample_by, cache_dir=str(tmp_path / "hf")
    )["text"]
    texts = [t for batch in file_texts.FileTexts(path, "text", documents=documents).batches() for t in batch]
    assert texts == expected
