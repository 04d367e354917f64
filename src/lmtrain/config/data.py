"""Schemas of the `data` groups: pretraining corpora (text or image-caption) and fine-tuning task data.

Each data preset names its schema, so a text corpus has no image keys and a task's data has only
the keys its reader uses. Within one schema, a key that only some data sources read says which in
its field metadata (:func:`read_by`); a value given for a key that the chosen source does not read
is refused (:func:`check_source_keys`), never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from lmtrain.config.checks import ConfigRangeError, IgnoredKeyError, check_range, read_by, unread_fields


def check_source_keys(data: Any, given: Iterable[str] = ()) -> None:
    """Refuse the first key of ``data`` that its source does not read (see :func:`unread_fields`).

    Raises:
        IgnoredKeyError: naming the key, the sources that read it and how to choose one.
    """
    for name in unread_fields(data, data.active_source(), given):
        readers = data.__dataclass_fields__[name].metadata["read_by"]
        words = [f"{data.SOURCES[r][0]} ({data.SOURCES[r][1]})" for r in readers if r in data.SOURCES]
        reader = " or ".join(words) if words else f"by no source of this data ({data.chosen()})"
        choices = " or ".join(data.SOURCES[r][1] for r in readers if r in data.SOURCES)
        advice = f"Choose {choices} for it, or drop the key." if choices else "Drop the key."
        raise IgnoredKeyError(
            name, getattr(data, name), f"is read only {reader}; the chosen data {data.chosen()} would ignore it", advice
        )


def check_cache_dir(data: Any) -> None:
    """Refuse an empty ``data.cache_dir`` (it names no folder).

    Raises:
        ConfigRangeError: naming the key and the two ways to the default cache home.
    """
    if data.cache_dir is not None and not str(data.cache_dir).strip():
        raise ConfigRangeError(
            "cache_dir",
            "a folder, or null for the default cache home",
            repr(data.cache_dir),
            "an empty value names no folder: leave the key out, or give data.cache_dir=null, for "
            "$XDG_CACHE_HOME/lmtrain or ~/.cache/lmtrain",
        )


class ChosenSource:
    """What a data schema with several sources has: the source it reads, and its keys checked against it.

    Attributes:
        SOURCES: source -> (who reads a key of that source, in words; how to choose that source).
    """

    SOURCES: ClassVar[dict[str, tuple[str, str]]] = {}
    name: str  # fields of each subclass (annotations only here: no dataclass field of this class)
    source: str

    def active_source(self) -> str:
        """The source the data is read from (its keys are the ones read)."""
        return self.source

    def chosen(self) -> str:
        """The chosen data, in words, for errors."""
        return f"{self.name} (data.source={self.source})"

    def _check_source(self) -> None:
        """Refuse an unknown source, and a key given a value that the source does not read."""
        if self.SOURCES and self.active_source() not in self.SOURCES:
            raise ConfigRangeError("source", f"one of {' | '.join(self.SOURCES)}", self.source)
        check_source_keys(self)


@dataclass
class DataConfig(ChosenSource):
    """What every pretraining corpus has: where it is and how it is split."""

    name: str = "lee"  # label for the corpus, shown in run listings
    source: str = (
        "bundled"  # bundled (ships with gensim) | files (data.train_files) | hf (a `datasets` dataset) | shapes
    )
    # your training files, folders or globs (sorted)
    train_files: list[str] = field(default_factory=list, metadata=read_by("files"))
    # held-out files; empty = hold out a share of the training data
    eval_files: list[str] = field(default_factory=list, metadata=read_by("bundled", "files"))
    eval_fraction: float = 0.1  # share held out when no eval_files are given
    max_seq_len: int = 128  # tokens per training sequence, special tokens included
    # tokenizers and tokenized data, keyed by content hash (unset: $XDG_CACHE_HOME/lmtrain, else ~/.cache/lmtrain)
    cache_dir: str | None = None
    split_seed: int = 1234  # seed of the train / held-out split and of pair sampling

    def __post_init__(self) -> None:
        check_range(self, "eval_fraction", 0, 1, low_open=True, high_open=True)
        check_range(self, "max_seq_len", 1)
        check_cache_dir(self)
        self._check_source()


@dataclass
class TextDataConfig(DataConfig):
    """A text corpus and how it becomes training sequences."""

    SOURCES: ClassVar[dict[str, tuple[str, str]]] = {
        "bundled": ("from the bundled corpora", "data=lee_wiki, data=lee or data=wiki"),
        "files": ("from your own text files", "data=text"),
        "hf": ("from a `datasets` dataset", "data=hf"),
    }

    # gensim test_data files
    bundled: list[str] = field(default_factory=lambda: ["lee_background.cor"], metadata=read_by("bundled"))
    # auto (by extension; .gz / .bz2 / .xz read as they are) | text | jsonl | parquet
    format: str = field(default="auto", metadata=read_by("bundled", "files"))
    text_field: str = "text"  # the JSONL field that holds a document
    # text files: line (one document per line) | blank_line (blank-line separated)
    documents: str = field(default="line", metadata=read_by("bundled", "files"))
    short_seq_prob: float = 0.1  # BERT: share of pairs built shorter than max_seq_len
    dupe_factor: int = 5  # BERT static masking: copies of the data, each with its own mask
    packing: str = "full_sentences"  # full_sentences (may cross documents) | doc_sentences
    num_proc: int = 1  # processes that tokenize and build the examples, by chunks (same examples for any number)
    # a `datasets` dataset (source=hf; configs/data/hf.yaml); the text is in data.text_field
    # hf: Hub dataset id, dataset folder (parquet / json / csv / arrow files) or save_to_disk folder
    path: Optional[str] = field(default=None, metadata=read_by("hf"))
    # hf: the dataset's configuration (subset), e.g. wikitext-2-raw-v1; None = its default
    config_name: Optional[str] = field(default=None, metadata=read_by("hf"))
    train_split: str = field(default="train", metadata=read_by("hf"))  # hf: the split trained on
    # hf: the held-out split; None = hold out eval_fraction of the training documents
    eval_split: Optional[str] = field(default=None, metadata=read_by("hf"))
    # hf: read rows while tokenizing instead of first preparing an Arrow copy in the datasets cache
    streaming: bool = field(default=False, metadata=read_by("hf"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "short_seq_prob", 0, 1)
        check_range(self, "dupe_factor", 1)
        check_range(self, "num_proc", 1)


@dataclass
class ImageFields:
    """How image-caption pairs are read and augmented (pretraining captions and the retrieval task)."""

    # folder the captions file's image paths are relative to (None = its folder)
    image_root: Optional[str] = field(default=None, metadata=read_by("files"))
    # accept caption image paths that lead outside image_root (.., absolute)
    allow_outside_root: bool = field(default=False, metadata=read_by("files"))
    max_words: int = 30  # caption words kept (ALBEF's pre_caption)
    # skip pairs whose image is missing or unreadable (and count them)
    skip_bad_images: bool = field(default=False, metadata=read_by("files"))
    crop_min_scale: float = 0.5  # smallest area share of a random training crop
    flip: bool = True  # random horizontal flips (with "left" and "right" swapped in the caption)
    # the generated shapes scenes: training scenes
    shapes_train: int = field(default=4000, metadata=read_by("shapes"))
    # the generated shapes scenes: held-out scenes (distinct captions)
    shapes_eval: int = field(default=200, metadata=read_by("shapes"))

    def _check_image_fields(self) -> None:
        for name in ("max_words", "shapes_train", "shapes_eval"):
            check_range(self, name, 1)
        check_range(self, "crop_min_scale", 0, 1, low_open=True)


@dataclass
class ImageCaptionDataConfig(DataConfig, ImageFields):
    """Image-caption pairs (ALBEF): generated shapes scenes or captions files."""

    SOURCES: ClassVar[dict[str, tuple[str, str]]] = {
        "shapes": ("from the generated shapes scenes", "data=shapes"),
        "files": ("from your own captions files", "data=captions"),
    }

    name: str = "shapes"
    source: str = "shapes"
    max_seq_len: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_image_fields()


@dataclass
class TaskDataConfig(ChosenSource):
    """`data.*` of `lmtrain finetune`: what every task's labelled data has. Task presets extend it."""

    SOURCES: ClassVar[dict[str, tuple[str, str]]] = {
        "files": ("from files", "data.source=files"),
        "hf": ("from a `datasets` dataset", "data.source=hf"),
    }

    name: str = "bundled"  # label for the data set, shown in run listings
    # your training file; None = the task's bundled data
    train_file: Optional[str] = field(default=None, metadata=read_by("files"))
    # held-out file; None = the bundled dev set, or eval_fraction of train_file
    eval_file: Optional[str] = field(default=None, metadata=read_by("files"))
    bundled_train: Optional[str] = None  # set by the task preset: bundled training file (lmtrain or gensim:<name>)
    bundled_eval: Optional[str] = None  # set by the task preset: bundled dev file (None = hold out)
    # auto (by extension) | conll | jsonl | tsv | csv | fasttext
    format: str = field(default="auto", metadata=read_by("files"))
    eval_fraction: float = 0.1  # share of training examples held out when there is no eval file
    split_seed: int = 1234  # seed of that hold-out split
    max_seq_len: int = 128  # tokens per example, special tokens included (at most the model's positions)
    max_examples: Optional[int] = None  # use only the first N training examples (quick experiments)
    # encoded examples, keyed by a hash of the data, tokenizer and settings (unset: $XDG_CACHE_HOME/lmtrain,
    # else ~/.cache/lmtrain)
    cache_dir: Optional[str] = None
    # a `datasets` dataset instead of files (source=hf): ner reads tokens_field and tag_column, classification
    # text_column, text_pair_column and label_column (ClassLabel values read as their names)
    source: str = "files"  # files (data.train_file, or the task's bundled data) | hf (data.path)
    # hf: Hub dataset id, dataset folder (parquet / json / csv / arrow files) or save_to_disk folder
    path: Optional[str] = field(default=None, metadata=read_by("hf"))
    # hf: the dataset's configuration (subset), e.g. conll2003's; None = its default
    config_name: Optional[str] = field(default=None, metadata=read_by("hf"))
    train_split: str = field(default="train", metadata=read_by("hf"))  # hf: the split trained on
    # hf: the held-out split; None = hold out eval_fraction of the training examples
    eval_split: Optional[str] = field(default=None, metadata=read_by("hf"))

    def __post_init__(self) -> None:
        check_range(self, "eval_fraction", 0, 1, low_open=True, high_open=True)
        check_range(self, "max_seq_len", 2, reason="room for the special tokens around at least one token")
        check_range(self, "max_examples", 1)
        check_cache_dir(self)
        self._check_source()


@dataclass
class NerDataConfig(TaskDataConfig):
    """Tagged words: CoNLL columns or JSON lines."""

    # the tags: a CoNLL column index (None = -1, the last; CoNLL-2003 files work as they are) or, with
    # source=hf, a column name (None = ner_tags; ClassLabel tags read as their names)
    tag_column: Any = None
    scheme: str = "bio"  # bio (IOB2) | iob1 (CoNLL-2003; converted to bio on reading) | bioes
    tokens_field: str = "tokens"  # JSONL / dataset field with the words
    tags_field: str = field(default="tags", metadata=read_by("files"))  # JSONL field with the tags

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.tag_column is None or isinstance(self.tag_column, (int, str)) and str(self.tag_column)):
            raise ConfigRangeError("tag_column", "a column index or a column name", self.tag_column)


@dataclass
class ClassificationDataConfig(TaskDataConfig):
    """Labelled texts (or text pairs): TSV / CSV with columns, fastText lines, or JSON lines."""

    text_column: str = "sentence"  # column name (with a header) or 0-based index of the text
    text_pair_column: Optional[str] = None  # second text of sentence pairs (MRPC, RTE ...)
    label_column: str = "label"  # column name or 0-based index of the label
    # the first row names the columns (None = guess)
    header: Optional[bool] = field(default=None, metadata=read_by("files"))
    positive_label: Optional[str] = None  # class whose F1 is reported for binary tasks


@dataclass
class GenerationDataConfig(TaskDataConfig):
    """Prompt / completion pairs in JSON lines."""

    prompt_field: str = "prompt"  # JSONL field of the prompt
    completion_field: str = "completion"  # JSONL field of the completion (the only tokens with loss)


@dataclass
class RetrievalDataConfig(TaskDataConfig, ImageFields):
    """Image-caption pairs with several captions per image (Flickr / COCO style), or the generated shapes."""

    SOURCES: ClassVar[dict[str, tuple[str, str]]] = {
        "files": ("from your captions files", "data.train_file=<captions file>"),
        "shapes": ("from the generated shapes scenes", "no data.train_file"),
    }

    source: str = "files"  # files: data.train_file (captions), or the generated shapes scenes without one
    # read by no retrieval data: captions files are recognised by their content, and there is no bundled set
    format: str = field(default="auto", metadata=read_by())
    bundled_train: Optional[str] = field(default=None, metadata=read_by())
    bundled_eval: Optional[str] = field(default=None, metadata=read_by())
    cache_dir: Optional[str] = field(default=None, metadata=read_by())  # captions are encoded at every run

    def __post_init__(self) -> None:
        if self.source != "files":
            raise ConfigRangeError(
                "source",
                "files (task=retrieval reads captions files, or the generated shapes scenes without data.train_file)",
                self.source,
            )
        super().__post_init__()
        self._check_image_fields()

    def active_source(self) -> str:
        """``files`` with a captions file (data.train_file), else ``shapes`` (the generated scenes)."""
        return "files" if self.train_file else "shapes"

    def chosen(self) -> str:
        """The chosen data, in words, for errors."""
        return f"{self.name} ({'data.train_file=' + self.train_file if self.train_file else 'the generated shapes'})"
