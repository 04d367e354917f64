"""The task example cache: a later run reads what an earlier one encoded, equal, and only when nothing changed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from lmtrain.config import TokenizerConfig
from lmtrain.config.data import ClassificationDataConfig, GenerationDataConfig, NerDataConfig
from lmtrain.data.tokenizer import train_tokenizer
from lmtrain.errors import UserError
from lmtrain.tasks.base import TaskDataset
from lmtrain.tasks.classification import ClassificationTask
from lmtrain.tasks.completion import CompletionTask
from lmtrain.tasks.example_cache import FOLDER, cached_datasets
from lmtrain.tasks.ner import NerTask
from tests.tasks.fixtures import write_conll, write_pairs_jsonl, write_sentiment_tsv

ROLES = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
USED = "using cached examples"


def _tokenizer(texts, vocab_size=200, kind="wordpiece"):
    cfg = TokenizerConfig(kind=kind, vocab_size=vocab_size, min_frequency=1, special_tokens=ROLES)
    return train_tokenizer(texts, OmegaConf.structured(cfg))


def _task(kind: str, root: Path, cache: Path | None, **data):
    cache_dir = str(cache) if cache is not None else None
    if kind == "ner":
        train, dev = write_conll(root / "train.conll", 60, seed=0), write_conll(root / "dev.conll", 20, seed=1)
        cfg = NerDataConfig(train_file=str(train), eval_file=str(dev), cache_dir=cache_dir, **data)
        task = NerTask(cfg)
    elif kind == "classification":
        train, dev = write_sentiment_tsv(root / "train.tsv", 60, seed=0), write_sentiment_tsv(root / "dev.tsv", 20, 1)
        task = ClassificationTask(
            ClassificationDataConfig(train_file=str(train), eval_file=str(dev), cache_dir=cache_dir)
        )
    else:
        pairs = write_pairs_jsonl(root / "pairs.jsonl", 60, seed=0)
        task = CompletionTask(GenerationDataConfig(train_file=str(pairs), cache_dir=cache_dir))
    task.read()
    return task


def _assert_equal(first, second):
    for a, b in zip(first, second):
        assert type(b) is TaskDataset and len(a) == len(b)
        for x, y in zip(a.examples, b.examples):
            assert list(x) == list(y)
            for name in x:
                if isinstance(x[name], np.ndarray):
                    assert y[name].dtype == x[name].dtype and np.array_equal(x[name], y[name])
                else:
                    assert type(y[name]) is type(x[name]) and y[name] == x[name]


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / FOLDER).iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.mark.parametrize("kind", ["ner", "classification", "generation"])
def test_a_second_run_reads_equal_examples_from_the_cache(kind, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    task = _task(kind, tmp_path, tmp_path / "cache")
    tokenizer = _tokenizer(task.texts())
    first = cached_datasets(task, tokenizer, 16)
    assert USED not in caplog.text and len(_entries(tmp_path / "cache")) == 1
    _assert_equal(first, task.datasets(tokenizer, 16))  # what the task encodes itself
    caplog.clear()
    again = _task(kind, tmp_path, tmp_path / "cache")
    second = cached_datasets(again, tokenizer, 16)
    assert USED in caplog.text
    _assert_equal(first, second)


def test_what_the_encoding_said_is_said_again_from_the_cache(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    task = _task("ner", tmp_path, tmp_path / "cache")
    tokenizer = _tokenizer(task.texts())
    cached_datasets(task, tokenizer, 6)
    said = [r.getMessage() for r in caplog.records if "split into windows" in r.getMessage()]
    assert said
    caplog.clear()
    cached_datasets(_task("ner", tmp_path, tmp_path / "cache"), tokenizer, 6)
    assert USED in caplog.text
    assert [r.getMessage() for r in caplog.records if "split into windows" in r.getMessage()] == said


def test_a_change_to_the_data_the_tokenizer_or_the_length_is_a_new_entry(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cache = tmp_path / "cache"
    task = _task("ner", tmp_path, cache)
    tokenizer = _tokenizer(task.texts())
    cached_datasets(task, tokenizer, 16)
    cached_datasets(task, tokenizer, 12)
    cached_datasets(task, _tokenizer(task.texts(), vocab_size=150), 16)
    task.eval[0].words[0] = "Zanzibar"  # one word of the held-out data
    changed = cached_datasets(task, tokenizer, 16)
    assert USED not in caplog.text and len(_entries(cache)) == 4
    _assert_equal(changed, task.datasets(tokenizer, 16))
    cached_datasets(task, tokenizer, 16)
    assert USED in caplog.text and len(_entries(cache)) == 4


def _record_digest(entry: Path) -> None:
    """Make entry.json's digest of train.npz match the file (a damage that the digest alone would not find)."""
    import hashlib

    meta = json.loads(entry.joinpath("entry.json").read_text())
    meta["sha256"]["train"] = hashlib.sha256(entry.joinpath("train.npz").read_bytes()).hexdigest()
    entry.joinpath("entry.json").write_text(json.dumps(meta))


def _not_a_zip_with_its_digest(entry: Path) -> None:
    """train.npz replaced by bytes that are no zip, and entry.json's digest made to match them."""
    entry.joinpath("train.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    _record_digest(entry)


def _compressed_with_its_digest(entry: Path) -> None:
    """train.npz rewritten compressed (a member could then inflate beyond the file), its digest made to match."""
    with np.load(entry / "train.npz") as arrays:
        np.savez_compressed(entry / "train.npz", **dict(arrays))
    _record_digest(entry)


def _a_header_that_claims_too_much(entry: Path) -> None:
    """An array whose header claims a trillion values (np.load would allocate them), its digest made to match."""
    import io
    import zipfile

    with zipfile.ZipFile(entry / "train.npz") as original:
        members = {name: original.read(name) for name in original.namelist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (10**12,)})
    members["input_ids.values.npy"] = header.getvalue() + b"\x00" * 64  # magic, header, 8 values of a trillion
    with zipfile.ZipFile(entry / "train.npz", "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    _record_digest(entry)


@pytest.mark.parametrize(
    "damage,said",
    [
        (lambda e: e.joinpath("train.npz").write_bytes(e.joinpath("train.npz").read_bytes()[:-40]), "SHA-256 differs"),
        (lambda e: e.joinpath("eval.npz").unlink(), "No such file"),
        (lambda e: e.joinpath("entry.json").write_text("{not json"), "Expecting property name"),
        (lambda e: e.joinpath("entry.json").write_text(json.dumps({"format": 99})), "format 99, not 1"),
        (lambda e: e.joinpath("entry.json").write_text("[1, 2]"), "has no attribute 'get'"),
        (_not_a_zip_with_its_digest, "File is not a zip file"),
        (_compressed_with_its_digest, "holds a compressed member"),
        (_a_header_that_claims_too_much, "claims (1000000000000,) of int64, more than it holds"),
        (
            lambda e: e.joinpath("entry.json").write_text(
                json.dumps({**json.loads(e.joinpath("entry.json").read_text()), "log": [["lmtrain", "INFO", "x"]]})
            ),
            "not (logger, level, message) triples",
        ),
    ],
)
def test_a_damaged_entry_is_said_and_encoded_again(damage, said, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cache = tmp_path / "cache"
    task = _task("classification", tmp_path, cache)
    tokenizer = _tokenizer(task.texts())
    first = cached_datasets(task, tokenizer, 16)
    (entry,) = _entries(cache)
    damage(entry)
    caplog.clear()
    again = cached_datasets(task, tokenizer, 16)
    assert "are damaged" in caplog.text and said in caplog.text and USED not in caplog.text
    _assert_equal(first, again)
    caplog.clear()
    _assert_equal(first, cached_datasets(task, tokenizer, 16))  # written again, whole
    assert USED in caplog.text and "are damaged" not in caplog.text


class _UncachedTask(ClassificationTask):
    """A task of a user's own that does not say what its examples are made of."""

    def example_inputs(self):
        return None


class _TextFieldTask(ClassificationTask):
    """A task that promises cacheable examples but adds a text field."""

    def datasets(self, tokenizer, max_seq_len):
        train, held_out = super().datasets(tokenizer, max_seq_len)
        return TaskDataset([{**e, "text": "x"} for e in train.examples]), held_out


def test_a_task_without_example_inputs_encodes_every_time_and_refuses_a_cache_dir(tmp_path):
    task = _task("classification", tmp_path, None)
    task.__class__ = _UncachedTask
    tokenizer = _tokenizer(task.texts())
    _assert_equal(cached_datasets(task, tokenizer, 16), task.datasets(tokenizer, 16))
    task.cfg.cache_dir = str(tmp_path / "cache")
    with pytest.raises(UserError, match=r"data.cache_dir=.*task=classification encodes its examples at every run"):
        cached_datasets(task, tokenizer, 16)
    assert not (tmp_path / "cache").exists()


def test_a_tokenizer_with_bpe_dropout_is_never_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))
    task = _task("classification", tmp_path, None)
    tokenizer = _tokenizer(task.texts(), kind="bpe")
    tokenizer.tokenizer.model.dropout = 0.1
    cached_datasets(task, tokenizer, 16)
    assert not (tmp_path / "home").exists()
    task.cfg.cache_dir = str(tmp_path / "cache")
    with pytest.raises(UserError, match=r"its tokenizer samples its pieces \(BPE dropout\)"):
        cached_datasets(task, tokenizer, 16)


def test_examples_the_cache_cannot_store_are_refused_naming_the_field(tmp_path):
    task = _task("classification", tmp_path, tmp_path / "cache")
    task.__class__ = _TextFieldTask
    with pytest.raises(UserError, match=r"task=classification: .* field 'text' holds a str"):
        cached_datasets(task, _tokenizer(task.texts()), 16)


def test_a_cache_that_cannot_be_written_is_said_and_the_run_goes_on(tmp_path):
    script = textwrap.dedent(
        f"""
        import logging, resource, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        from tests.tasks.test_example_cache import _task, _tokenizer
        from lmtrain.tasks.example_cache import cached_datasets
        task = _task("classification", Path({str(tmp_path)!r}), Path({str(tmp_path / "cache")!r}))
        tokenizer = _tokenizer(task.texts())
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))  # the files of the entry are bigger
        train, held_out = cached_datasets(task, tokenizer, 16)
        print("examples", len(train), len(held_out))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "examples 60 20" in proc.stdout
    assert "could not keep the encoded examples in" in proc.stderr and "File too large" in proc.stderr
    assert not list((tmp_path / "cache" / FOLDER).glob("*/entry.json"))  # nothing half-written
    assert not [p for p in (tmp_path / "cache" / FOLDER).iterdir() if p.is_dir()]


def test_a_default_cache_home_that_cannot_be_made_is_said_and_the_examples_encoded(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "home-file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    task = _task("classification", tmp_path, None)
    tokenizer = _tokenizer(task.texts())
    _assert_equal(cached_datasets(task, tokenizer, 16), task.datasets(tokenizer, 16))
    assert "cannot create the cache folder" in caplog.text and "encoded without it" in caplog.text
    assert blocker.read_text() == "not a folder\n"
    task.cfg.cache_dir = str(blocker)  # a folder the user names is the user's ask: refused
    with pytest.raises(UserError, match="data.cache_dir=.*cannot create the cache folder"):
        cached_datasets(task, tokenizer, 16)


def test_an_entry_folder_that_is_a_file_is_said_and_the_examples_encoded(tmp_path, caplog):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / FOLDER).write_text("in the way\n")
    task = _task("classification", tmp_path, cache)
    tokenizer = _tokenizer(task.texts())
    _assert_equal(cached_datasets(task, tokenizer, 16), task.datasets(tokenizer, 16))
    assert "cannot lock" in caplog.text and "encoded without the cache" in caplog.text
    assert (cache / FOLDER).read_text() == "in the way\n"


# The digest of the built-in tasks' examples of a fixed tokenizer and fixed inputs, per FORMAT_VERSION. A cache
# entry is keyed by FORMAT_VERSION, not by the encoding code: when this test fails, the encoding changed, and
# entries written by the old code would be read as if they were the new code's. Raise FORMAT_VERSION in
# lmtrain/tasks/example_cache.py and record the new digest under it.
ENCODINGS = {1: "e0930d5bf9980a9117997fee1f5a9e2f8f8377a3136d8109bc80dcbe58f404e4"}


def _fixed_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    from lmtrain.data.tokenizer import TextTokenizer

    words = ["the", "film", "was", "great", "dull", "alice", "visited", "paris", "says", "cat", "meow", "."]
    vocab = {t: i for i, t in enumerate([*ROLES.values(), *words, "##s", "##ed", "p", "##a", "##r", "##i"])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return TextTokenizer(tokenizer, ROLES)


def test_the_built_in_encodings_are_the_ones_format_version_names():
    import hashlib

    from lmtrain.data.example_arrays import to_arrays
    from lmtrain.tasks.completion import Pair
    from lmtrain.tasks.conll import TaggedSentence
    from lmtrain.tasks.example_cache import FORMAT_VERSION
    from lmtrain.tasks.tabular import LabelledText

    tokenizer = _fixed_tokenizer()
    ner = NerTask(NerDataConfig())
    ner.train = [TaggedSentence(["Alice", "visited", "Paris", "."], ["B-PER", "O", "B-LOC", "O"])] * 2
    ner.train += [TaggedSentence(["Alice", "visits", "Parisian", "cats", "."], ["B-PER", "O", "B-MISC", "O", "O"])]
    ner.eval, ner.labels = ner.train[:1], ["O", "B-LOC", "B-MISC", "B-PER"]
    classification = ClassificationTask(ClassificationDataConfig())
    classification.train = [LabelledText("the film was great", None, "1", 2), LabelledText("dull", "the film", "0", 3)]
    classification.eval, classification.labels = classification.train[1:], ["0", "1"]
    generation = CompletionTask(GenerationDataConfig())
    generation.train = generation.eval = [Pair("the cat says", " meow meow."), Pair("the film", " was dull")]
    digest = hashlib.sha256()
    for task, length in ((ner, 5), (ner, 16), (classification, 5), (classification, 16), (generation, 4)):
        for dataset in task.datasets(tokenizer, length):
            arrays, fields = to_arrays(dataset.examples)
            digest.update(repr(fields).encode())
            for name in sorted(arrays):
                digest.update(name.encode() + str(arrays[name].dtype).encode() + arrays[name].tobytes())
    assert ENCODINGS.get(FORMAT_VERSION) == digest.hexdigest(), (
        "the built-in tasks' encoding changed: raise FORMAT_VERSION in lmtrain/tasks/example_cache.py and record "
        f"{digest.hexdigest()} under it in ENCODINGS"
    )


class _TalkingTask(ClassificationTask):
    """A task of a user's own that logs under its own logger while it encodes."""

    def datasets(self, tokenizer, max_seq_len):
        logging.getLogger("my_plug.task").warning("3 pairs had no score; scored 0")
        return super().datasets(tokenizer, max_seq_len)


def test_what_a_tasks_own_logger_said_is_said_again_from_the_cache(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    task = _task("classification", tmp_path, tmp_path / "cache")
    task.__class__ = _TalkingTask
    tokenizer = _tokenizer(task.texts())
    cached_datasets(task, tokenizer, 16)
    caplog.clear()
    cached_datasets(task, tokenizer, 16)
    assert USED in caplog.text
    said = [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name == "my_plug.task"]
    assert said == [("my_plug.task", logging.WARNING, "3 pairs had no score; scored 0")]


def test_what_a_run_killed_while_writing_left_is_removed_and_the_entry_written(tmp_path, caplog):
    from lmtrain.tasks.example_cache import entry_key, inputs_digest

    caplog.set_level(logging.INFO)
    cache = tmp_path / "cache"
    task = _task("classification", tmp_path, cache)
    tokenizer = _tokenizer(task.texts())
    key = entry_key(task, inputs_digest(task.example_inputs()), tokenizer, 16)
    leftover = cache / FOLDER / f".tmp-{key}-killed"  # as atomic_directory names its folder
    leftover.mkdir(parents=True)
    (leftover / "train.npz").write_bytes(b"PK\x03\x04 half a file")
    other = cache / FOLDER / ".tmp-0123456789abcdef-live"  # another entry's writer: not this run's to remove
    other.mkdir()
    first = cached_datasets(task, tokenizer, 16)
    assert not leftover.exists() and other.is_dir() and _entries(cache)[0].name == key
    caplog.clear()
    _assert_equal(first, cached_datasets(task, tokenizer, 16))
    assert USED in caplog.text


class _SetInputsTask(ClassificationTask):
    """A task of a user's own whose example_inputs holds a set (JSON has none)."""

    def example_inputs(self):
        return [{e.text for e in self.train}]


def test_example_inputs_that_json_cannot_hold_are_refused_naming_the_task(tmp_path):
    task = _task("classification", tmp_path, tmp_path / "cache")
    task.__class__ = _SetInputsTask
    with pytest.raises(UserError, match=r"task=classification: example_inputs\(\) returned what JSON cannot hold"):
        cached_datasets(task, _tokenizer(task.texts()), 16)


def test_a_task_plug_whose_code_changed_encodes_again(tmp_path, monkeypatch, caplog):
    import importlib

    caplog.set_level(logging.INFO)
    package = tmp_path / "plugs" / "my_tasks"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from my_tasks.task import MyTask\n")
    source = (
        "from lmtrain.tasks.classification import ClassificationTask\n\n\n"
        "class MyTask(ClassificationTask):\n    name = 'mine'\n"
    )
    (package / "task.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path / "plugs"))
    my_task = importlib.import_module("my_tasks").MyTask
    task = _task("classification", tmp_path, tmp_path / "cache")
    task.__class__ = my_task
    tokenizer = _tokenizer(task.texts())
    cached_datasets(task, tokenizer, 16)
    cached_datasets(task, tokenizer, 16)
    assert caplog.text.count(USED) == 1
    (package / "task.py").write_text(source + "    # its encoding changed\n")
    cached_datasets(task, tokenizer, 16)
    assert caplog.text.count(USED) == 1 and len(_entries(tmp_path / "cache")) == 2
