"""`datasets` datasets as pretraining corpora: dataset folders, save_to_disk folders, a cached Hub id,
streaming, cache keys that follow the data, and the errors for a missing split, column or dataset."""

from __future__ import annotations

import pytest

from lmtrain.data.pretraining import prepare_pretraining_data
from lmtrain.errors import UserError
from tests.conftest import compose_config, objective_plug, write_corpus
from tests.data.hf_fixtures import cache_hub_dataset, offline_hf_cache, write_parquet_repo, write_saved_dataset

pytest.importorskip("datasets")


def _documents(tmp_path, n_docs=40) -> list[str]:
    return write_corpus(tmp_path / "corpus.txt", n_docs=n_docs).read_text().splitlines()


def _prepare(tmp_path, *extra, cache="cache"):
    cfg = compose_config(
        "pretrain",
        ["debug=tiny", "model=gpt", "data=hf", "data.max_seq_len=32", f"data.cache_dir={tmp_path / cache}", *extra],
    )
    return prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))


def _examples(store) -> list[list[int]]:
    return [store[i]["input_ids"].tolist() for i in range(len(store))]


def test_dataset_folder_streaming_gives_the_same_examples(tmp_path, monkeypatch):
    offline_hf_cache(tmp_path, monkeypatch)
    docs = _documents(tmp_path)
    repo = write_parquet_repo(tmp_path / "repo", {"train": {"body": docs, "id": list(range(len(docs)))}})
    prepared = _prepare(tmp_path, f"data.path={repo}", "data.text_field=body")
    streamed = _prepare(
        tmp_path, f"data.path={repo}", "data.text_field=body", "data.streaming=true", cache="cache-streaming"
    )
    assert not prepared.from_cache and not streamed.from_cache
    assert len(prepared.train) > 20 and len(prepared.eval) > 0
    assert _examples(streamed.train) == _examples(prepared.train)
    assert _examples(streamed.eval) == _examples(prepared.eval)
    assert _prepare(tmp_path, f"data.path={repo}", "data.text_field=body").from_cache


def test_save_to_disk_folder_with_an_eval_split(tmp_path):
    docs = _documents(tmp_path)
    saved = write_saved_dataset(tmp_path / "saved", {"train": {"text": docs[:30]}, "validation": {"text": docs[30:]}})
    data = _prepare(tmp_path, f"data.path={saved}", "data.eval_split=validation")
    held_out = {tuple(x) for x in _examples(data.eval)}
    assert held_out and not held_out & {tuple(x) for x in _examples(data.train)}
    # the same documents as a text file, held-out split given as a file: the same examples
    (tmp_path / "train.txt").write_text("\n".join(docs[:30]) + "\n")
    (tmp_path / "dev.txt").write_text("\n".join(docs[30:]) + "\n")
    cfg = compose_config(
        "pretrain",
        [
            "debug=tiny",
            "model=gpt",
            "data=text",
            "data.max_seq_len=32",
            f"data.train_files=[{tmp_path / 'train.txt'}]",
            f"data.eval_files=[{tmp_path / 'dev.txt'}]",
            f"data.cache_dir={tmp_path / 'c2'}",
            f"tokenizer.path={data.tokenizer_path}",
        ],
    )
    files = prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))
    assert _examples(files.train) == _examples(data.train) and _examples(files.eval) == _examples(data.eval)


def test_a_changed_dataset_is_tokenized_again(tmp_path, monkeypatch):
    offline_hf_cache(tmp_path, monkeypatch)
    docs = _documents(tmp_path)
    saved = write_saved_dataset(tmp_path / "saved", {"train": {"text": docs}})
    repo = write_parquet_repo(tmp_path / "repo", {"train": {"text": docs}})
    for path, rewrite in ((saved, write_saved_dataset), (repo, write_parquet_repo)):
        first = _prepare(tmp_path, f"data.path={path}")
        assert _prepare(tmp_path, f"data.path={path}").from_cache
        rewrite(path, {"train": {"text": docs[:-5]}})
        changed = _prepare(tmp_path, f"data.path={path}")
        assert not changed.from_cache and len(changed.train) < len(first.train)


def test_a_cached_hub_dataset_loads_offline(tmp_path, monkeypatch):
    cache = offline_hf_cache(tmp_path, monkeypatch)
    docs = _documents(tmp_path)
    repo = write_parquet_repo(tmp_path / "toy", {"train": {"text": docs[:32]}, "validation": {"text": docs[32:]}})
    cache_hub_dataset(repo, "someone/toy", cache, tmp_path / "prepare")
    data = _prepare(tmp_path, "data.path=someone/toy", "data.eval_split=validation")
    local = _prepare(
        tmp_path,
        f"data.path={repo}",
        "data.eval_split=validation",
        f"tokenizer.path={data.tokenizer_path}",
        cache="cache-local",
    )
    assert _examples(data.train) == _examples(local.train) and _examples(data.eval) == _examples(local.eval)


def test_errors_name_the_split_column_and_cache(tmp_path, monkeypatch):
    cache = offline_hf_cache(tmp_path, monkeypatch)
    docs = _documents(tmp_path, n_docs=10)
    repo = write_parquet_repo(tmp_path / "repo", {"train": {"body": docs, "id": list(range(10))}})
    with pytest.raises(
        UserError,
        match=r"data.eval_split=test: data.path=.*repo has no split 'test'; its splits "
        r"are train\. .*data.eval_split=null",
    ):
        _prepare(tmp_path, f"data.path={repo}", "data.eval_split=test", "data.text_field=body")
    with pytest.raises(
        UserError,
        match=r"data.text_field=text: .*repo\[train\] has no column 'text'; its columns "
        r"are body, id\.",
    ):
        _prepare(tmp_path, f"data.path={repo}")
    saved = write_saved_dataset(tmp_path / "saved", {"train": {"text": docs}})
    with pytest.raises(UserError, match=r"data.train_split=validation: .* its splits are train\."):
        _prepare(tmp_path, f"data.path={saved}", "data.train_split=validation")
    with pytest.raises(UserError) as error:
        _prepare(tmp_path, "data.path=someone/not-downloaded")
    assert "offline mode is on" in str(error.value) and "someone/not-downloaded" in str(error.value)
    assert f"not in the cache folder {cache}" in str(error.value)
    with pytest.raises(UserError, match=r"data.path=.*nowhere/at/all: no such folder"):
        _prepare(tmp_path, f"data.path={tmp_path / 'nowhere' / 'at' / 'all'}")


def test_a_folder_with_a_loading_script_is_refused_without_running_it(tmp_path):
    from tests.conftest import run_cli

    folder = tmp_path / "mydata"
    folder.mkdir()
    marker = tmp_path / "script-ran"
    (folder / "mydata.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (folder / "train.jsonl").write_text('{"text": "One document."}\n')
    proc = run_cli(
        "pretrain",
        "debug=tiny",
        "data=hf",
        f"data.path={folder}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env={"HF_HOME": str(tmp_path / "hf-home")},
    )
    assert proc.returncode == 2, proc.stderr
    message = " ".join(proc.stderr.split())
    assert (
        f"data.path={folder}: the folder holds a dataset loading script, mydata.py, and lmtrain never runs "
        "the code of a dataset"
        in message
        and "save_to_disk" in message
    )
    assert "Traceback" not in proc.stderr and not marker.exists() and not (tmp_path / "hf-home").exists()


def test_an_empty_save_to_disk_split_is_an_error_naming_it(tmp_path):
    docs = _documents(tmp_path, n_docs=10)
    saved = write_saved_dataset(tmp_path / "saved", {"train": {"text": docs}, "validation": {"text": []}})
    data = _prepare(tmp_path, f"data.path={saved}")  # the empty split is not read
    assert len(data.train) > 0
    with pytest.raises(UserError) as error:
        _prepare(tmp_path, f"data.path={saved}", "data.eval_split=validation")
    assert str(error.value) == (
        f"data.eval_split=validation: data.path={saved} holds no rows in split "
        f"'validation' (its {saved / 'validation' / 'state.json'} lists no data files: an "
        "empty dataset was saved). Save the dataset again with its rows, or choose a split "
        "that has some."
    )
    single = tmp_path / "single"
    import datasets

    datasets.Dataset.from_dict({"text": []}).save_to_disk(str(single))
    with pytest.raises(UserError, match=r"data.train_split=train: data.path=.*single holds no rows in split 'train'"):
        _prepare(tmp_path, f"data.path={single}")
