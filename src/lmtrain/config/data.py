"""Schemas of the `data` groups: pretraining corpora (text or image-caption) and fine-tuning task data.

Each data preset names its schema, so a text corpus has no image keys and a task's data has only
the keys its reader uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from lmtrain.config_checks import ConfigRangeError, check_range


@dataclass
class DataConfig:
    """What every pretraining corpus has: where it is and how it is split."""

    name: str = "lee"  # label for the corpus, shown in run listings
    source: str = "bundled"  # bundled (ships with gensim) | files (data.train_files) | hf (a `datasets` dataset) | shapes
    train_files: list[str] = field(default_factory=list)  # your training files, folders or globs (sorted)
    eval_files: list[str] = field(default_factory=list)  # held-out files; empty = hold out a share of the training data
    eval_fraction: float = 0.1  # share held out when no eval_files are given
    max_seq_len: int = 128  # tokens per training sequence, special tokens included
    cache_dir: str = "~/.cache/lmtrain"  # tokenizers and tokenized data, keyed by content hash
    split_seed: int = 1234  # seed of the train / held-out split and of pair sampling

    def __post_init__(self) -> None:
        check_range(self, "eval_fraction", 0, 1, low_open=True, high_open=True)
        check_range(self, "max_seq_len", 1)


@dataclass
class TextDataConfig(DataConfig):
    """A text corpus and how it becomes training sequences."""

    bundled: list[str] = field(default_factory=lambda: ["lee_background.cor"])  # gensim test_data files
    format: str = "auto"  # auto (by extension; .gz / .bz2 / .xz read as they are) | text | jsonl | parquet
    text_field: str = "text"  # the JSONL field that holds a document
    documents: str = "line"  # text files: line (one document per line) | blank_line (blank-line separated)
    short_seq_prob: float = 0.1  # BERT: share of pairs built shorter than max_seq_len
    dupe_factor: int = 5  # BERT static masking: copies of the data, each with its own mask
    packing: str = "full_sentences"  # full_sentences (may cross documents) | doc_sentences
    num_proc: int = 1  # processes that tokenize and build the examples, by chunks (same examples for any number)
    # a `datasets` dataset (source=hf; configs/data/hf.yaml); the text is in data.text_field
    path: Optional[str] = None  # hf: Hub dataset id, dataset folder (parquet / json / csv / arrow files) or save_to_disk folder
    config_name: Optional[str] = None  # hf: the dataset's configuration (subset), e.g. wikitext-2-raw-v1; None = its default
    train_split: str = "train"  # hf: the split trained on
    eval_split: Optional[str] = None  # hf: the held-out split; None = hold out eval_fraction of the training documents
    streaming: bool = False  # hf: read rows while tokenizing instead of first preparing an Arrow copy in the datasets cache

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "short_seq_prob", 0, 1)
        check_range(self, "dupe_factor", 1)
        check_range(self, "num_proc", 1)


@dataclass
class ImageFields:
    """How image-caption pairs are read and augmented (pretraining captions and the retrieval task)."""

    image_root: Optional[str] = None  # folder the captions file's image paths are relative to (None = its folder)
    allow_outside_root: bool = False  # accept caption image paths that lead outside image_root (.., absolute)
    max_words: int = 30  # caption words kept (ALBEF's pre_caption)
    skip_bad_images: bool = False  # skip pairs whose image is missing or unreadable (and count them)
    crop_min_scale: float = 0.5  # smallest area share of a random training crop
    flip: bool = True  # random horizontal flips (with "left" and "right" swapped in the caption)
    shapes_train: int = 4000  # the generated shapes scenes: training scenes
    shapes_eval: int = 200  # the generated shapes scenes: held-out scenes (distinct captions)

    def _check_image_fields(self) -> None:
        for name in ("max_words", "shapes_train", "shapes_eval"):
            check_range(self, name, 1)
        check_range(self, "crop_min_scale", 0, 1, low_open=True)


@dataclass
class ImageCaptionDataConfig(DataConfig, ImageFields):
    """Image-caption pairs (ALBEF): generated shapes scenes or captions files."""

    name: str = "shapes"
    source: str = "shapes"
    max_seq_len: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_image_fields()


@dataclass
class TaskDataConfig:
    """`data.*` of `lmtrain finetune`: what every task's labelled data has. Task presets extend it."""

    name: str = "bundled"  # label for the data set, shown in run listings
    train_file: Optional[str] = None  # your training file; None = the task's bundled data
    eval_file: Optional[str] = None  # held-out file; None = the bundled dev set, or eval_fraction of train_file
    bundled_train: Optional[str] = None  # set by the task preset: bundled training file (lmtrain or gensim:<name>)
    bundled_eval: Optional[str] = None  # set by the task preset: bundled dev file (None = hold out)
    format: str = "auto"  # auto (by extension) | conll | jsonl | tsv | csv | fasttext
    eval_fraction: float = 0.1  # share of training examples held out when there is no eval file
    split_seed: int = 1234  # seed of that hold-out split
    max_seq_len: int = 128  # tokens per example, special tokens included (at most the model's positions)
    max_examples: Optional[int] = None  # use only the first N training examples (quick experiments)
    # a `datasets` dataset instead of files (source=hf): ner reads tokens_field and tag_column, classification
    # text_column, text_pair_column and label_column (ClassLabel values read as their names)
    source: str = "files"  # files (data.train_file, or the task's bundled data) | hf (data.path)
    path: Optional[str] = None  # hf: Hub dataset id, dataset folder (parquet / json / csv / arrow files) or save_to_disk folder
    config_name: Optional[str] = None  # hf: the dataset's configuration (subset), e.g. conll2003's; None = its default
    train_split: str = "train"  # hf: the split trained on
    eval_split: Optional[str] = None  # hf: the held-out split; None = hold out eval_fraction of the training examples

    def __post_init__(self) -> None:
        check_range(self, "eval_fraction", 0, 1, low_open=True, high_open=True)
        check_range(self, "max_seq_len", 2, reason="room for the special tokens around at least one token")
        check_range(self, "max_examples", 1)


@dataclass
class NerDataConfig(TaskDataConfig):
    """Tagged words: CoNLL columns or JSON lines."""

    # the tags: a CoNLL column index (None = -1, the last; CoNLL-2003 files work as they are) or, with
    # source=hf, a column name (None = ner_tags; ClassLabel tags read as their names)
    tag_column: Any = None
    scheme: str = "bio"  # bio (IOB2) | iob1 (CoNLL-2003; converted to bio on reading) | bioes
    tokens_field: str = "tokens"  # JSONL / dataset field with the words
    tags_field: str = "tags"  # JSONL field with the tags

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
    header: Optional[bool] = None  # the first row names the columns (None = guess)
    positive_label: Optional[str] = None  # class whose F1 is reported for binary tasks


@dataclass
class GenerationDataConfig(TaskDataConfig):
    """Prompt / completion pairs in JSON lines."""

    prompt_field: str = "prompt"  # JSONL field of the prompt
    completion_field: str = "completion"  # JSONL field of the completion (the only tokens with loss)


@dataclass
class RetrievalDataConfig(TaskDataConfig, ImageFields):
    """Image-caption pairs with several captions per image (Flickr / COCO style), or the generated shapes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_image_fields()
