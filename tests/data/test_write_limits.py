"""A write that runs out of room while data is prepared (a full disk, a quota, ``ulimit -f``): one paragraph,
exit 2, and nothing half-written in the cache that a later run would read."""

from __future__ import annotations

import resource
from contextlib import contextmanager
from pathlib import Path

import pytest

from lmtrain.data.pretraining import PretrainingPreparation, prepare_pretraining_data, read_tokenizer_text
from lmtrain.errors import UserError
from tests.conftest import compose_config, objective_plug, write_corpus


@contextmanager
def file_size_limit(n_bytes: int):
    """Within the block a write past ``n_bytes`` of a file fails with EFBIG (Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _cfg(tmp_path: Path, *extra: str):
    corpus = write_corpus(tmp_path / "c.txt", n_docs=40)
    return compose_config(
        "pretrain",
        ["debug=tiny", "data=text", f"data.train_files=[{corpus}]", f"data.cache_dir={tmp_path / 'cache'}", *extra],
    )


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix != ".lock")


def test_a_tokenizer_that_cannot_be_saved_is_a_user_error_and_leaves_no_file(tmp_path):
    cfg = _cfg(tmp_path)
    with file_size_limit(2000), pytest.raises(UserError) as error:  # the tokenizer's file is ~10 kB
        PretrainingPreparation(cfg.data, cfg.tokenizer).tokenizer()
    assert "could not write the tokenizer" in str(error.value) and "file-size limit (ulimit -f)" in str(error.value)
    assert "Nothing half-written was kept" in str(error.value)
    folders = [p for p in (tmp_path / "cache" / "tokenizers").iterdir() if p.is_dir()]
    assert all(not list(folder.iterdir()) for folder in folders)  # neither tokenizer.json nor its temporary file
    _, path = PretrainingPreparation(cfg.data, cfg.tokenizer).tokenizer()  # with room, the next run trains it
    assert path.is_file()


@pytest.mark.parametrize("num_proc", [1, 2])
def test_examples_that_cannot_be_written_are_a_user_error_and_leave_no_store(tmp_path, monkeypatch, num_proc):
    from lmtrain.data import pretraining

    monkeypatch.setattr(pretraining, "CHUNK_CHARS", 4000)  # several chunks, for the processes to share
    cfg = _cfg(tmp_path, f"data.num_proc={num_proc}")
    recipe = objective_plug(cfg.objective)
    tokenizer, path = PretrainingPreparation(cfg.data, cfg.tokenizer).tokenizer()
    before = _files(tmp_path / "cache")
    with file_size_limit(4000), pytest.raises(UserError) as error:  # a shard's columns are ~8 kB
        PretrainingPreparation(cfg.data, cfg.tokenizer).examples(tokenizer, read_tokenizer_text(path), recipe, path)
    message = str(error.value)
    assert "could not write the tokenized examples in" in message and "File too large" in message
    assert "Nothing half-written was kept" in message and "data.cache_dir" in message
    assert _files(tmp_path / "cache") == sorted([*before, "examples"])  # no store, no temporary folder: a lock's folder
    assert len(prepare_pretraining_data(cfg.data, cfg.tokenizer, recipe).train) > 0


def test_a_dataset_copy_that_cannot_be_written_is_a_user_error(tmp_path, monkeypatch):
    from tests.data.hf_fixtures import offline_hf_cache, write_parquet_repo

    cache = offline_hf_cache(tmp_path, monkeypatch)
    docs = write_corpus(tmp_path / "c.txt", n_docs=200).read_text().splitlines()
    repo = write_parquet_repo(tmp_path / "repo", {"train": {"text": docs}}, shards=1)
    cfg = compose_config("pretrain", ["debug=tiny", "data=hf", f"data.path={repo}", f"data.cache_dir={tmp_path / 'c'}"])
    with file_size_limit(20_000), pytest.raises(UserError) as error:  # its Arrow copy is ~80 kB
        prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))
    message = str(error.value)
    assert f"could not write the Arrow copy of data.path={repo} in {cache}" in message
    assert "file-size limit (ulimit -f)" in message and "set HF_DATASETS_CACHE to a folder" in message
    assert not [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"]  # no half-written copy
