"""The composed config of each command: its groups, typed by the schemas of this package.

The plug groups (``model``, ``objective``, ``task``, and the data of each) are typed by the schema
their preset names, so they are declared ``Any`` here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from lmtrain.config.checks import (
    ConfigRangeError,
    IgnoredKeyError,
    check_range,
    read_by,
    unknown_key_error,
    unread_fields,
)
from lmtrain.config.data import TextDataConfig
from lmtrain.config.training import OptimConfig, TokenizerConfig, TrainerConfig


@dataclass
class PretrainConfig:
    """`lmtrain pretrain`: the composed config of a pretraining run."""

    # continue pretraining from these weights (run dir | checkpoint | Hugging Face folder | Hub id); the model's
    # dimensions and tokenizer then come from it. None = a new model of the model preset
    init: Optional[str] = None
    model: Any = MISSING  # a model family's schema (configs/model/*.yaml name it)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: Any = MISSING  # a corpus schema: text or image-caption (configs/data/*.yaml name it)
    objective: Any = MISSING  # an objective's schema (configs/objective/*.yaml name it)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


# Sampling temperatures that sample: below the lowest, logits / T overflow (1e-300 makes every
# probability NaN) while sampling is already greedy in all but name; above the highest, it is noise.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0
TEMPERATURE_RANGE = f"0 (greedy) or in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}]"
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch's random generators take


def check_temperature(value: float) -> None:
    """Raise ConfigRangeError unless ``value`` is 0 (greedy) or a finite temperature that samples."""
    if value != 0 and not (isinstance(value, (int, float)) and MIN_TEMPERATURE <= value <= MAX_TEMPERATURE):
        raise ConfigRangeError(
            "temperature", TEMPERATURE_RANGE, value, "0 = greedy decoding; use greedy=true for the most likely text"
        )


@dataclass
class GenerateConfig:
    """`lmtrain generate`: decode from a causal LM or fill [MASK] tokens with an MLM."""

    ckpt: Optional[str] = None  # run directory or checkpoint directory
    prompt: Optional[str] = None  # the text to continue (or with [MASK] tokens for MLM models)
    prompts_file: Optional[str] = None  # a file with one prompt per line
    max_new_tokens: int = 40  # tokens to generate per prompt (fewer if the model's positions run out)
    greedy: bool = False  # take the most likely token instead of sampling
    temperature: float = 1.0  # < 1 sharper, > 1 flatter; 0 = greedy; else in [0.01, 100]
    top_k: int = 0  # keep the k most likely tokens (0 = off)
    top_p: float = 1.0  # nucleus sampling: smallest set with this probability mass (1.0 = off)
    seed: int = 0  # sampling seed: the same seed gives the same text
    use_cache: bool = True  # key/value cache (off only to check it)
    stream: bool = True  # print tokens as they are produced, one prompt at a time; false = batches
    batch_size: int = 16  # prompts decoded together when stream=false
    candidates: int = 5  # masked LMs: candidates shown per mask token
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "batch_size", "candidates"):
            check_range(self, name, 1)
        check_temperature(self.temperature)
        check_range(self, "top_k", 0)
        check_range(self, "top_p", 0, 1, low_open=True)
        check_range(self, "seed", *SEED_RANGE)


def open_node() -> Any:
    """An open node, whose keys a command checks once it knows what reads them (the run's data, its task)."""
    from omegaconf import OmegaConf

    return OmegaConf.create({}, flags={"struct": False})


def moved_to(new_key: str) -> dict[str, str]:
    """Field metadata of a key that moved: its old spelling stays only to say where it went (not an alias)."""
    return {"moved_to": new_key}


def check_moved(owner: Any) -> None:
    """Raise IgnoredKeyError for a field of ``owner`` marked :func:`moved_to` that was given a value other than its
    default. The old default stays: a run saved before the move holds it, and resumes (its saved config then
    differs from the new one only by keys one side lacks, which resuming allows)."""
    for spec in dataclasses.fields(owner):
        new_key = spec.metadata.get("moved_to")
        value = getattr(owner, spec.name)
        if new_key and value != spec.default:
            raise IgnoredKeyError(
                spec.name,
                value,
                f"is read no more: the key moved to {new_key}, in the schema of the task that reads it",
                f"Write {new_key}={value} instead.",
            )


def moved_keys(owner: type, prefix: str) -> dict[str, str]:
    """``{old dotted key: new key}`` for the fields of the dataclass ``owner`` marked :func:`moved_to`, the old
    key written under ``prefix`` (``finetune.`` for :class:`FinetuneOptions`)."""
    return {
        prefix + spec.name: spec.metadata["moved_to"]
        for spec in dataclasses.fields(owner)
        if "moved_to" in spec.metadata
    }


@dataclass
class EvaluateConfig:
    """`lmtrain evaluate`: held-out loss / perplexity or masked accuracy of a checkpoint."""

    ckpt: Optional[str] = None  # run directory or checkpoint directory
    # unset: the run's own data and held-out split, as saved in the run (data.<key>=... changes one of its keys);
    # a data preset (data=lee_wiki, data=text data.train_files=[...]) evaluates on that data instead
    data: Any = field(default_factory=open_node)
    batch_size: int = 32  # sequences per forward pass
    max_batches: Optional[int] = None  # cap on batches evaluated (None = the whole split)
    seed: int = 0  # seed of the evaluation masks for dynamically masked (RoBERTa-style) MLM models
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    split: str = "eval"  # eval (held-out part) | all (every document of the corpus)

    def __post_init__(self) -> None:
        check_range(self, "batch_size", 1)
        check_range(self, "max_batches", 1)
        if self.split not in ("eval", "all"):
            raise ConfigRangeError("split", "eval (the held-out documents) or all", self.split)
        if dataclasses.is_dataclass(self.data) and not isinstance(self.data, TextDataConfig):
            raise ConfigRangeError(
                "data",
                "a text corpus: lee_wiki, lee, wiki, text or hf",
                getattr(self.data, "name", type(self.data).__name__),
            )
        for key, value in self.data.items() if isinstance(self.data, dict) else ():
            if key not in {f.name for f in dataclasses.fields(TextDataConfig)}:
                raise unknown_key_error(TextDataConfig, "data.", key, value)


@dataclass
class EmbedMethodConfig:
    """`embed.*` of `lmtrain embed`: what every word-vector method's schema has (its plug class)."""

    _target_: str = ""  # the method's plug class (set by each method's schema)


@dataclass
class EmbedTrainingConfig(EmbedMethodConfig):
    """The corpus and the settings every training method (word2vec, GloVe) reads."""

    # bundled gensim corpus: lee_wiki (Lee news + Wikipedia excerpt, ~450k words), lee (~58k) or a gensim
    # test_data file name
    corpus: str = "lee_wiki"
    # your .txt (one document per line) / .jsonl files; replace `corpus`
    train_files: list[str] = field(default_factory=list)
    # auto (by extension: .jsonl / .json = jsonl) | text | jsonl
    file_format: str = "auto"
    # the JSONL field that holds a document
    text_field: str = "text"
    # simple_preprocess (gensim) | lower | lower_strip_punct
    tokenize: str = "simple_preprocess"
    # dimensions of a word vector
    vector_size: int = 100
    # context words on each side of the centre word
    window: int = 5
    # words occurring fewer times are dropped from the vocabulary
    min_count: int = 5
    # keep at most this many (most frequent) words; None = no cap
    max_vocab: Optional[int] = None
    # passes over the corpus (word2vec) / over the co-occurrence entries (glove)
    epochs: int = 5
    # word2vec: initial learning rate (gensim's alpha); glove: AdaGrad step size
    lr: float = 0.025
    # seed of the initial vectors and the order of training
    seed: int = 42
    # word2vec: worker threads (reproducible only with 1); glove: torch CPU threads
    workers: int = 3

    def __post_init__(self) -> None:
        for name in ("vector_size", "window", "max_vocab", "epochs", "workers"):
            check_range(self, name, 1)
        check_range(self, "min_count", 0)
        check_range(self, "lr", 0, low_open=True)


@dataclass
class Word2VecConfig(EmbedTrainingConfig):
    """Skip-gram or CBOW vectors trained by gensim's Word2Vec (negative sampling or hierarchical softmax)."""

    _target_: str = "lmtrain.embeddings.word2vec.Word2VecMethod"
    # 0 = CBOW, 1 = skip-gram
    sg: int = 0
    # 1 = hierarchical softmax
    hs: int = 0
    # negative samples per word; 0 = none (then set hs=1)
    negative: int = 5
    # sub-sampling threshold of frequent words; 0 = off
    sample: float = 1e-3
    # learning rate at the end of training (gensim's min_alpha)
    min_lr: float = 1e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("negative", "sample", "min_lr"):
            check_range(self, name, 0)
        for name in ("sg", "hs"):
            check_range(self, name, 0, 1)


@dataclass
class GloveConfig(EmbedTrainingConfig):
    """The GloVe model as in the reference glove.c, trained in minibatches with AdaGrad."""

    _target_: str = "lmtrain.embeddings.glove.GloveMethod"
    # co-occurrence count at which the weight f(x) reaches 1
    x_max: float = 100.0
    # exponent of the weighting f(x) = (x / x_max) ** alpha
    alpha: float = 0.75
    # co-occurrence entries per AdaGrad step
    batch_size: int = 4096
    # clip each vector gradient component (reference glove.c)
    grad_clip: float = 100.0
    # tokens per co-occurrence counting chunk (bounds memory)
    chunk_tokens: int = 1_000_000
    # auto | cpu | cuda | cuda:N
    device: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("batch_size", "chunk_tokens"):
            check_range(self, name, 1)
        for name in ("alpha", "grad_clip"):
            check_range(self, name, 0)
        check_range(self, "x_max", 0, low_open=True)


@dataclass
class LoadVectorsConfig(EmbedMethodConfig):
    """Existing word vectors, evaluated without training (`path=` names the file)."""

    _target_: str = "lmtrain.embeddings.io.LoadVectorsMethod"
    # unpickle a gensim .kv file. Unpickling runs any code the file holds: only for files you made or
    # trust; word2vec / GloVe files need no such risk.
    allow_pickle: bool = False


# ConfigStore ``schema/embed/<name>``: what configs/method/*.yaml extend
EMBED_SCHEMAS = {"word2vec": Word2VecConfig, "glove": GloveConfig, "load": LoadVectorsConfig}


@dataclass
class EmbedEvalConfig:
    """`eval.*` of `lmtrain embed`: the benchmarks word vectors are scored on."""

    analogies: Optional[str] = "questions-words.txt"  # path or gensim test_data name; None = skip
    # name -> word-pair file (path or gensim test_data name), tab separated `word1 word2 score`
    similarities: dict[str, str] = field(
        default_factory=lambda: {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
    )
    restrict_vocab: int = 300000  # only the N most frequent words take part (gensim's default)
    case_insensitive: bool = True  # compare words upper-cased, as the benchmarks are mixed case

    def __post_init__(self) -> None:
        check_range(self, "restrict_vocab", 1)


@dataclass
class EmbedConfig:
    """`lmtrain embed`: train word vectors (word2vec | glove) or load them (load), then evaluate."""

    method: str = "word2vec"  # set by the method group: word2vec | glove | load
    embed: Any = MISSING  # the method's schema (configs/method/*.yaml name it): a plug, like a model family
    eval: EmbedEvalConfig = field(default_factory=EmbedEvalConfig)
    path: Optional[str] = field(default=None, metadata=read_by("load"))  # method=load: the vectors file to evaluate
    # method=load: auto | word2vec | glove | kv (gensim KeyedVectors.save, a pickle: needs embed.allow_pickle=true)
    format: str = field(default="auto", metadata=read_by("load"))
    query: list[str] = field(default_factory=list)  # words whose nearest neighbours are printed
    topn: int = 10  # neighbours shown per query word
    progress: bool = True  # rich progress bar (off for logs and CI)

    def __post_init__(self) -> None:
        check_range(self, "topn", 1)
        for name in unread_fields(self, self.method):
            readers = self.__dataclass_fields__[name].metadata["read_by"]
            raise IgnoredKeyError(
                name,
                getattr(self, name),
                f"is read only by method={' or method='.join(readers)}; the chosen "
                f"method={self.method} would ignore it",
                f"Choose method={readers[0]} for it, or drop the key.",
            )


@dataclass
class FinetuneOptions:
    """`finetune.*`: what is trained, and how, on top of the pretrained backbone."""

    # train only the task head (and ELMo's scalar mix); null = the family's usual way: ELMo's biLM
    # frozen, Transformers fine-tuned whole
    freeze_backbone: Optional[bool] = None
    freeze_layers: int = 0  # freeze the embeddings and the first N Transformer blocks
    head_lr: Optional[float] = None  # learning rate of the task head (None = optim.lr; 1e-2 over a frozen ELMo)
    class_weights: Any = "none"  # none | auto (inverse class frequency) | [w0, w1, ...] in label order
    head_dropout: Optional[float] = None  # dropout inside the task head (None = the backbone's dropout)
    task_encoder: Optional[str] = field(default=None, metadata=moved_to("task.encoder"))  # moved: task.encoder
    task_lstm_dim: int = field(default=128, metadata=moved_to("task.lstm_dim"))  # moved: task.lstm_dim

    def __post_init__(self) -> None:
        check_moved(self)
        check_range(self, "freeze_layers", 0)
        check_range(self, "head_lr", 0)
        check_range(self, "head_dropout", 0, 1, high_open=True)


@dataclass
class FinetuneConfig:
    """`lmtrain finetune`: fine-tune a pretrained backbone on a labelled task."""

    init: Optional[str] = None  # None = latest compatible pretrain run | run dir | checkpoint | HF folder | scratch
    task: Any = MISSING  # a task's schema (configs/task/*.yaml name it)
    data: Any = MISSING  # the task's data schema (named by the task preset)
    finetune: FinetuneOptions = field(default_factory=FinetuneOptions)
    model: Any = MISSING  # init=scratch only: the backbone to build (a model family's schema)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # init=scratch only: trained on the task data
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class PredictConfig:
    """`lmtrain predict`: tag, classify or complete raw text with a fine-tuned run."""

    ckpt: Optional[str] = None  # fine-tuned run directory (its best checkpoint) or checkpoint directory
    input: Optional[str] = None  # text file with one input per line, or - for stdin
    output: Optional[str] = None  # write JSON lines here instead of plain lines on stdout
    batch_size: int = 32  # inputs per forward pass
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # the keys of the run's task (its predict schema, e.g. task.max_new_tokens=20 for generation, task.images=DIR
    # and task.top_k=3 for retrieval); a key that task does not read is refused
    task: Any = field(default_factory=open_node)
    # moved: task.max_new_tokens
    max_new_tokens: Optional[int] = field(default=None, metadata=moved_to("task.max_new_tokens"))
    images: Optional[str] = field(default=None, metadata=moved_to("task.images"))  # moved: task.images
    captions: Optional[str] = field(default=None, metadata=moved_to("task.captions"))  # moved: task.captions
    top_k: Optional[int] = field(default=None, metadata=moved_to("task.top_k"))  # moved: task.top_k

    def __post_init__(self) -> None:
        check_moved(self)
        check_range(self, "batch_size", 1)


@dataclass
class ExportConfig:
    """`lmtrain export`: write a checkpoint in another format."""

    ckpt: Optional[str] = None  # run directory or checkpoint directory
    # hf: a Hugging Face save_pretrained folder (transformers loads it) | safetensors: the full weights once, as
    # a weights-only lmtrain checkpoint (model.safetensors, model.json, tokenizer.json) every command loads
    format: str = "hf"
    out: Optional[str] = None  # the folder to write
    model_type: Optional[str] = None  # bert | roberta | gpt2 (None = from the checkpoint's family)

    def __post_init__(self) -> None:
        if self.format not in ("hf", "safetensors"):
            raise ConfigRangeError("format", "hf (a Hugging Face folder) or safetensors (lmtrain weights)", self.format)
