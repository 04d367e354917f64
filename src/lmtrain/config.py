"""Typed configuration: one dataclass per config group, registered with Hydra's ConfigStore.

YAML files under ``configs/`` only compose and override these schemas, so a misspelt key or a
value of the wrong type fails before any work starts. Each schema's ``__post_init__`` checks the
ranges of its own values (:func:`lmtrain.config_checks.check_config` runs them on a composed config). Each field carries its default and a
one-line description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from lmtrain.config_checks import ConfigRangeError, check_range
from lmtrain.errors import UserError
from lmtrain.training.limits import parse_duration


@dataclass
class ModelConfig:
    """The Transformer backbone. Presets (configs/model/*.yaml) set the family switches."""

    name: str = "bert"  # preset name: shown in run names, used to find compatible runs
    size: Optional[str] = None  # tiny | mini | small | base: fills the dimensions left unset
    n_layers: Optional[int] = None  # Transformer blocks
    d_model: Optional[int] = None  # hidden width
    n_heads: Optional[int] = None  # attention heads (d_model must divide evenly)
    d_ff: Optional[int] = None  # feed-forward inner width
    max_positions: int = 512  # longest sequence the position table covers
    causal: bool = False  # causal (GPT) or bidirectional (BERT) attention
    norm: str = "post"  # post (BERT: norm after the residual add) | pre (GPT-2)
    segment_vocab_size: int = 2  # number of segment (token type) ids; 0 = no segment embeddings
    position: str = "learned"  # learned | sinusoidal
    position_offset: int = 0  # first position id (RoBERTa starts at padding_idx + 1 = 2)
    activation: str = "gelu"  # gelu (exact, BERT) | gelu_tanh (GPT-2) | relu
    dropout: float = 0.1  # dropout on embeddings, attention output and feed-forward output
    attention_dropout: float = 0.1  # dropout on attention probabilities
    layer_norm_eps: float = 1e-12  # BERT uses 1e-12, GPT-2 1e-5
    embedding_norm: bool = True  # LayerNorm right after the embeddings (BERT, RoBERTa)
    final_norm: bool = False  # LayerNorm after the last block (GPT-2's ln_f)
    tie_embeddings: bool = True  # output projection shares the input embedding matrix
    checkpoint_activations: bool = False  # recompute block activations in backward to save memory
    init_std: float = 0.02  # std of the normal weight initialisation
    # ELMo's biLM (family=elmo; configs/model/elmo.yaml). d_model, n_layers, dropout are shared.
    family: str = "transformer"  # transformer (BERT / GPT / RoBERTa) | elmo (character CNN + biLSTM)
    token_encoder: str = "char_cnn"  # elmo: char_cnn (ELMo's character CNN) | embedding (token lookup table)
    max_chars: int = 20  # elmo: characters per token seen by the char CNN (begin/end-of-word included)
    char_dim: int = 16  # elmo: character embedding width
    char_filter_widths: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])  # elmo: CNN filter widths
    char_filter_counts: list[int] = field(default_factory=lambda: [32, 32, 64, 128, 256])  # elmo: filters per width
    highway_layers: int = 2  # elmo: highway layers after the char CNN
    lstm_dim: int = 512  # elmo: LSTM cell size; each layer projects back to d_model (LSTMP)
    # ALBEF (family=albef; configs/model/albef.yaml): the Transformer above is the text + fusion encoder
    fusion_layers: int = 1  # albef: the last N of n_layers cross-attend to the image (the fusion encoder)
    embed_dim: int = 64  # albef: width of the shared image-text feature space
    image_size: int = 32  # albef: side of the square input images, in pixels
    patch_size: int = 8  # albef: side of a ViT patch (image_size must be a multiple)
    vision_layers: int = 2  # albef: ViT blocks
    vision_d_model: int = 128  # albef: ViT width
    vision_n_heads: int = 2  # albef: ViT attention heads
    vision_d_ff: int = 512  # albef: ViT feed-forward width
    queue_size: int = 1024  # albef: momentum features queued as negatives (a multiple of the global batch)
    momentum: float = 0.995  # albef: EMA coefficient of the momentum encoders
    temp: float = 0.07  # albef: initial contrastive temperature (learned, clamped to [0.001, 0.5])

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "d_ff", "max_positions", "max_chars", "char_dim", "lstm_dim",
                     "embed_dim", "image_size", "patch_size", "vision_layers", "vision_d_model", "vision_n_heads",
                     "vision_d_ff", "queue_size", "char_filter_widths", "char_filter_counts"):
            check_range(self, name, 1)
        for name in ("segment_vocab_size", "position_offset", "highway_layers", "fusion_layers", "init_std"):
            check_range(self, name, 0)
        for name in ("dropout", "attention_dropout"):
            check_range(self, name, 0, 1, high_open=True)
        check_range(self, "layer_norm_eps", 0, low_open=True)
        check_range(self, "momentum", 0, 1)
        check_range(self, "temp", 0, low_open=True)
        if self.family == "albef" and self.image_size % self.patch_size:
            raise ConfigRangeError("image_size", f"a multiple of model.patch_size={self.patch_size}", self.image_size,
                                   "the image is cut into whole patches")


@dataclass
class TokenizerConfig:
    """How text becomes ids: train one with `tokenizers`, or load an existing tokenizer.json."""

    kind: str = "wordpiece"  # wordpiece (BERT) | bpe (byte-level, GPT-2 / RoBERTa)
    vocab_size: int = 8000  # target vocabulary size when training
    min_frequency: int = 2  # a merge / word piece must occur this often to enter the vocabulary
    lowercase: bool = True  # lowercase and strip accents before splitting (uncased BERT)
    path: Optional[str] = None  # an existing tokenizer.json to use instead of training one
    # role -> token string; roles: pad, unk, cls, sep, mask, bos, eos. Empty by default so a
    # tokenizer preset's roles replace, rather than extend, another preset's.
    special_tokens: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_range(self, "vocab_size", 1)
        check_range(self, "min_frequency", 0)


@dataclass
class DataConfig:
    """Where the corpus comes from and how it becomes training sequences."""

    name: str = "lee"  # label for the corpus, shown in run listings
    source: str = "bundled"  # bundled (ships with gensim) | files (data.train_files)
    bundled: list[str] = field(default_factory=lambda: ["lee_background.cor"])  # gensim test_data files
    train_files: list[str] = field(default_factory=list)  # text (.txt) or JSON lines (.jsonl) files
    eval_files: list[str] = field(default_factory=list)  # held-out files; empty = hold out documents
    format: str = "auto"  # auto (by extension) | text | jsonl
    text_field: str = "text"  # the JSONL field that holds a document
    documents: str = "line"  # text files: line (one document per line) | blank_line (blank-line separated)
    eval_fraction: float = 0.1  # share of documents held out when no eval_files are given
    max_seq_len: int = 128  # tokens per training sequence, special tokens included
    short_seq_prob: float = 0.1  # BERT: share of pairs built shorter than max_seq_len
    dupe_factor: int = 5  # BERT static masking: copies of the data, each with its own mask
    packing: str = "full_sentences"  # full_sentences (may cross documents) | doc_sentences
    cache_dir: str = "~/.cache/lmtrain"  # tokenizers and tokenized data, keyed by content hash
    split_seed: int = 1234  # seed of the train / held-out split and of pair sampling
    # image-caption data (model=albef; configs/data/shapes.yaml, configs/data/captions.yaml)
    image_root: Optional[str] = None  # albef: folder the captions file's image paths are relative to (None = its folder)
    allow_outside_root: bool = False  # albef: accept caption image paths that lead outside image_root (.., absolute)
    max_words: int = 30  # albef: caption words kept (ALBEF's pre_caption)
    skip_bad_images: bool = False  # albef: skip pairs whose image is missing or unreadable (and count them)
    crop_min_scale: float = 0.5  # albef: smallest area share of a random training crop
    flip: bool = True  # albef: random horizontal flips (with "left" and "right" swapped in the caption)
    shapes_train: int = 4000  # albef, source=shapes: generated training scenes
    shapes_eval: int = 200  # albef, source=shapes: generated held-out scenes (distinct captions)
    # a `datasets` dataset (source=hf; configs/data/hf.yaml); the text is in data.text_field
    path: Optional[str] = None  # hf: Hub dataset id, dataset folder (parquet / json / csv / arrow files) or save_to_disk folder
    config_name: Optional[str] = None  # hf: the dataset's configuration (subset), e.g. wikitext-2-raw-v1; None = its default
    train_split: str = "train"  # hf: the split trained on
    eval_split: Optional[str] = None  # hf: the held-out split; None = hold out eval_fraction of the training documents
    streaming: bool = False  # hf: read rows while tokenizing instead of first preparing an Arrow copy in the datasets cache

    def __post_init__(self) -> None:
        check_range(self, "eval_fraction", 0, 1, low_open=True, high_open=True)
        check_range(self, "max_seq_len", 1)
        check_range(self, "short_seq_prob", 0, 1)
        for name in ("dupe_factor", "max_words", "shapes_train", "shapes_eval"):
            check_range(self, name, 1)
        check_range(self, "crop_min_scale", 0, 1, low_open=True)


@dataclass
class ObjectiveConfig:
    """The training objective: turns (model, batch) into a loss and metrics."""

    name: str = "mlm_nsp"  # mlm_nsp (BERT) | mlm (RoBERTa) | clm (GPT) | bilm (ELMo)
    masking: str = "static"  # static (drawn once in preprocessing) | dynamic (new mask each epoch)
    mask_prob: float = 0.15  # share of tokens selected for prediction
    mask_token_prob: float = 0.8  # of the selected: replaced by [MASK]
    random_token_prob: float = 0.1  # of the selected: replaced by a random token (rest unchanged)
    whole_word: bool = False  # select whole words (by the tokenizer's word ids), not sub-words
    # ALBEF (objective=albef): weights of its losses, distillation and evaluation
    itc_weight: float = 1.0  # albef: image-text contrastive loss
    itm_weight: float = 1.0  # albef: image-text matching loss
    mlm_weight: float = 1.0  # albef: masked LM conditioned on the image
    alpha: float = 0.4  # albef: weight of the momentum model's soft targets (ramped up over the first epoch); 0 = off
    hard_negatives: bool = True  # albef: ITM negatives sampled by contrastive similarity (false = uniformly)
    rerank_k: int = 16  # albef: evaluation re-ranks each query's k best contrastive candidates with ITM (0 = off)
    queue_start: int = 0  # albef: optimizer steps before queued features join the contrastive loss (0 = at once)

    def __post_init__(self) -> None:
        check_range(self, "mask_prob", 0, 1, low_open=True)
        check_range(self, "mask_token_prob", 0, 1)
        check_range(self, "random_token_prob", 0, round(1 - self.mask_token_prob, 12),
                    reason=f"[MASK] and random replacements share the selected tokens; "
                           f"mask_token_prob={self.mask_token_prob}")
        for name in ("itc_weight", "itm_weight", "mlm_weight", "rerank_k", "queue_start"):
            check_range(self, name, 0)
        check_range(self, "alpha", 0, 1)


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule."""

    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.01  # decoupled weight decay (never on biases, norms, embeddings' norms)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-6
    schedule: str = "linear"  # linear | cosine | constant (all after warmup)
    warmup_steps: Optional[int] = None  # None = warmup_ratio * max_steps
    warmup_ratio: float = 0.06
    min_lr_ratio: float = 0.0  # final learning rate as a share of the peak
    # steps over which warmup_ratio and the decay are planned (None = trainer.max_steps); a resumed run
    # with a larger max_steps keeps its original horizon unless this is set
    decay_steps: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ("lr", "weight_decay", "eps", "warmup_steps"):
            check_range(self, name, 0)
        check_range(self, "decay_steps", 1)
        check_range(self, "betas", 0, 1, high_open=True)
        for name in ("warmup_ratio", "min_lr_ratio"):
            check_range(self, name, 0, 1)


@dataclass
class TrainerConfig:
    """The one training loop, shared by every model and objective."""

    max_steps: int = 800  # optimizer steps
    max_epochs: Optional[int] = None  # stop after this many passes over the training data (whichever comes first)
    max_time: Optional[str] = None  # training time budget (90s, 5m, 1h30m, 01:30:00); the schedule is planned for it
    batch_size: int = 32  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    grad_clip: float = 1.0  # max global gradient norm; 0 = no clipping
    log_every: int = 10  # steps between train/* entries in metrics.jsonl
    eval_every: int = 200  # steps between held-out evaluations; 0 = only at the end
    eval_every_epochs: int = 0  # also evaluate after every N epochs; 0 = off
    eval_at_start: bool = False  # evaluate the starting weights at step 0 (the baseline of a fine-tune)
    eval_batches: Optional[int] = None  # cap on held-out batches per evaluation (None = all)
    save_every: int = 200  # steps between checkpoints; 0 = only at the end
    keep_last: int = 2  # step-N checkpoints kept (the newest K); 0 = keep all
    resume: Optional[str] = None  # auto (newest checkpoint of this run dir) | path to a checkpoint
    overwrite: bool = False  # replace a run directory that already holds a run (deletes the old run first)
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    strategy: str = "auto"  # auto (DDP when started by torchrun with several processes) | single | ddp | fsdp
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 uses a gradient scaler, CUDA only)
    compile: bool = False  # torch.compile the training step (falls back to eager where it cannot compile)
    num_workers: int = 0  # DataLoader worker processes
    bucket_by_length: bool = False  # batch training examples of similar length (fine-tuning sets; presets turn it on)
    progress: bool = True  # rich progress bar (off for logs and CI)
    preflight: bool = True  # before training: longest batch, one evaluation batch, a checkpoint round trip, estimates
    # metric sinks: jsonl (metrics.jsonl, always on) | tensorboard (<run dir>/tb) | wandb
    loggers: list[str] = field(default_factory=lambda: ["jsonl"])
    monitor: Optional[str] = None  # eval metric that picks checkpoints/best (None = the objective's main one)
    early_stopping_patience: int = 0  # stop after this many evaluations without improvement; 0 = off

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_epochs", "batch_size", "grad_accum", "log_every", "eval_batches"):
            check_range(self, name, 1)
        for name in ("grad_clip", "eval_every", "eval_every_epochs", "save_every", "keep_last", "num_workers",
                     "early_stopping_patience"):
            check_range(self, name, 0)
        if self.max_time is not None:
            try:
                parse_duration(self.max_time)
            except UserError:
                raise ConfigRangeError("max_time", "a positive duration (90s, 5m, 1h30m, 01:30:00)",
                                       self.max_time) from None


@dataclass
class PretrainConfig:
    """`lmtrain pretrain`: the composed config of a pretraining run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class GenerateConfig:
    """`lmtrain generate`: decode from a causal LM or fill [MASK] tokens with an MLM."""

    ckpt: Optional[str] = None  # run directory or checkpoint directory
    prompt: Optional[str] = None  # the text to continue (or with [MASK] tokens for MLM models)
    prompts_file: Optional[str] = None  # a file with one prompt per line
    max_new_tokens: int = 40  # tokens to generate per prompt (fewer if the model's positions run out)
    greedy: bool = False  # take the most likely token instead of sampling
    temperature: float = 1.0  # < 1 sharper, > 1 flatter; 0 = greedy
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
        check_range(self, "temperature", 0)
        check_range(self, "top_k", 0)
        check_range(self, "top_p", 0, 1, low_open=True)


@dataclass
class EvaluateConfig:
    """`lmtrain evaluate`: held-out loss / perplexity or masked accuracy of a checkpoint."""

    ckpt: Optional[str] = None  # run directory or checkpoint directory
    data: DataConfig = field(default_factory=DataConfig)
    batch_size: int = 32  # sequences per forward pass
    max_batches: Optional[int] = None  # cap on batches evaluated (None = the whole split)
    seed: int = 0  # seed of the evaluation masks for dynamically masked (RoBERTa-style) MLM models
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    split: str = "eval"  # eval (held-out part) | all (every document of the corpus)

    def __post_init__(self) -> None:
        check_range(self, "batch_size", 1)
        check_range(self, "max_batches", 1)


@dataclass
class EmbedTrainConfig:
    """`embed.*` of `lmtrain embed`: the corpus and the training settings of word2vec and GloVe.

    Presets (configs/method/*.yaml) set each method's own defaults; keys a method does not use
    are ignored by it (marked word2vec: / glove: below).
    """

    corpus: str = "lee_wiki"  # bundled gensim corpus: lee_wiki (Lee news + Wikipedia excerpt, ~450k words), lee (~58k) or a gensim test_data file name
    train_files: list[str] = field(default_factory=list)  # your .txt (one document per line) / .jsonl files; replace `corpus`
    file_format: str = "auto"  # auto (by extension: .jsonl / .json = jsonl) | text | jsonl
    text_field: str = "text"  # the JSONL field that holds a document
    tokenize: str = "simple_preprocess"  # simple_preprocess (gensim) | lower | lower_strip_punct
    vector_size: int = 100  # dimensions of a word vector
    window: int = 5  # context words on each side of the centre word
    min_count: int = 5  # words occurring fewer times are dropped from the vocabulary
    max_vocab: Optional[int] = None  # keep at most this many (most frequent) words; None = no cap
    epochs: int = 5  # passes over the corpus (word2vec) / over the co-occurrence entries (glove)
    lr: float = 0.025  # word2vec: initial learning rate (gensim's alpha); glove: AdaGrad step size
    seed: int = 42
    sg: int = 0  # word2vec: 0 = CBOW, 1 = skip-gram
    hs: int = 0  # word2vec: 1 = hierarchical softmax
    negative: int = 5  # word2vec: negative samples per word; 0 = none (then set hs=1)
    sample: float = 1e-3  # word2vec: sub-sampling threshold of frequent words; 0 = off
    min_lr: float = 1e-4  # word2vec: learning rate at the end of training (gensim's min_alpha)
    workers: int = 3  # word2vec: worker threads (reproducible only with 1); glove: torch CPU threads
    x_max: float = 100.0  # glove: co-occurrence count at which the weight f(x) reaches 1
    alpha: float = 0.75  # glove: exponent of the weighting f(x) = (x / x_max) ** alpha
    batch_size: int = 4096  # glove: co-occurrence entries per AdaGrad step
    grad_clip: float = 100.0  # glove: clip each vector gradient component (reference glove.c)
    chunk_tokens: int = 1_000_000  # glove: tokens per co-occurrence counting chunk (bounds memory)
    device: str = "auto"  # glove: auto | cpu | cuda | cuda:N
    # method=load: unpickle a gensim .kv file. Unpickling runs any code the file holds: only for
    # files you made or trust; word2vec / GloVe files need no such risk.
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        for name in ("vector_size", "window", "max_vocab", "epochs", "workers", "batch_size", "chunk_tokens"):
            check_range(self, name, 1)
        for name in ("min_count", "negative", "sample", "min_lr", "alpha", "grad_clip"):
            check_range(self, name, 0)
        for name in ("sg", "hs"):
            check_range(self, name, 0, 1)
        check_range(self, "lr", 0, low_open=True)
        check_range(self, "x_max", 0, low_open=True)


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
    embed: EmbedTrainConfig = field(default_factory=EmbedTrainConfig)
    eval: EmbedEvalConfig = field(default_factory=EmbedEvalConfig)
    path: Optional[str] = None  # method=load: the vectors file to evaluate
    format: str = "auto"  # method=load: auto | word2vec | glove | kv (gensim KeyedVectors.save, a pickle: needs embed.allow_pickle=true)
    query: list[str] = field(default_factory=list)  # words whose nearest neighbours are printed
    topn: int = 10  # neighbours shown per query word
    progress: bool = True  # rich progress bar (off for logs and CI)

    def __post_init__(self) -> None:
        check_range(self, "topn", 1)


@dataclass
class TaskDataConfig:
    """`data.*` of `lmtrain finetune`: the labelled files of a task and how to read them.

    Task presets (configs/task/*.yaml) set each task's defaults; keys a task does not use are
    ignored by it (marked ner: / classification: / generation: below).
    """

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
    # ner: the tags: a CoNLL column index (None = -1, the last; CoNLL-2003 files work as they are) or, with
    # source=hf, a column name (None = ner_tags; ClassLabel tags read as their names)
    tag_column: Any = None
    scheme: str = "bio"  # ner: bio (IOB2) | iob1 (CoNLL-2003; converted to bio on reading) | bioes
    tokens_field: str = "tokens"  # ner: JSONL field with the words
    tags_field: str = "tags"  # ner: JSONL field with the tags
    text_column: str = "sentence"  # classification: column name (with a header) or 0-based index of the text
    text_pair_column: Optional[str] = None  # classification: second text of sentence pairs (MRPC, RTE ...)
    label_column: str = "label"  # classification: column name or 0-based index of the label
    header: Optional[bool] = None  # classification: the first row names the columns (None = guess)
    positive_label: Optional[str] = None  # classification: class whose F1 is reported for binary tasks
    prompt_field: str = "prompt"  # generation: JSONL field of the prompt
    completion_field: str = "completion"  # generation: JSONL field of the completion (the only tokens with loss)
    image_root: Optional[str] = None  # retrieval: folder the captions file's image paths are relative to
    allow_outside_root: bool = False  # retrieval: accept caption image paths that lead outside image_root (.., absolute)
    max_words: int = 30  # retrieval: caption words kept (ALBEF's pre_caption)
    skip_bad_images: bool = False  # retrieval: skip pairs whose image is missing or unreadable (and count them)
    crop_min_scale: float = 0.5  # retrieval: smallest area share of a random training crop
    flip: bool = True  # retrieval: random horizontal flips (with "left" and "right" swapped in the caption)
    shapes_train: int = 4000  # retrieval, bundled shapes: generated training scenes
    shapes_eval: int = 200  # retrieval, bundled shapes: generated held-out scenes
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
        for name in ("max_examples", "max_words", "shapes_train", "shapes_eval"):
            check_range(self, name, 1)
        check_range(self, "crop_min_scale", 0, 1, low_open=True)
        if not (self.tag_column is None or isinstance(self.tag_column, (int, str)) and str(self.tag_column)):
            raise ConfigRangeError("tag_column", "a column index or a column name", self.tag_column)


@dataclass
class TaskConfig:
    """`task.*`: which task is fine-tuned; set by the task preset (`task=ner|classification|generation`)."""

    name: str = "ner"  # ner | classification | generation
    samples: int = 5  # generation: held-out prompts decoded greedily into summary.json
    max_new_tokens: int = 40  # generation: tokens decoded per sample prompt
    alpha: float = 0.4  # retrieval: momentum distillation weight (ramped up over the first epoch)
    hard_negatives: bool = True  # retrieval: ITM negatives sampled by contrastive similarity
    rerank_k: int = 16  # retrieval: contrastive candidates re-ranked by the matching head at evaluation
    queue_start: int = 0  # retrieval: optimizer steps before queued features join the contrastive loss
    vision_init: Optional[str] = None  # retrieval: ALBEF run whose image encoder starts a text-only init (None = random)
    # ner: a linear-chain CRF over the word tags (Viterbi decoding); null = with a biLSTM task encoder only
    crf: Optional[bool] = None

    def __post_init__(self) -> None:
        for name in ("samples", "rerank_k", "queue_start"):
            check_range(self, name, 0)
        check_range(self, "max_new_tokens", 1)
        check_range(self, "alpha", 0, 1)


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
    # ner: linear | bilstm (the task's own biLSTM over the features); null = bilstm for ELMo, linear otherwise
    task_encoder: Optional[str] = None
    task_lstm_dim: int = 128  # cells per direction of the task biLSTM

    def __post_init__(self) -> None:
        check_range(self, "freeze_layers", 0)
        check_range(self, "head_lr", 0)
        check_range(self, "head_dropout", 0, 1, high_open=True)


@dataclass
class FinetuneConfig:
    """`lmtrain finetune`: fine-tune a pretrained backbone on a labelled task."""

    init: Optional[str] = None  # None = latest compatible pretrain run | run dir | checkpoint | HF folder | scratch
    task: TaskConfig = field(default_factory=TaskConfig)
    data: TaskDataConfig = field(default_factory=TaskDataConfig)
    finetune: FinetuneOptions = field(default_factory=FinetuneOptions)
    model: ModelConfig = field(default_factory=ModelConfig)  # init=scratch only: the backbone to build
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
    max_new_tokens: int = 40  # generation: tokens to decode per prompt
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    images: Optional[str] = None  # retrieval: folder of images to rank for each caption of `input`
    captions: Optional[str] = None  # retrieval: file of captions (one per line) to rank for each image of `input`
    top_k: int = 5  # retrieval: matches listed per query

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_new_tokens", "top_k"):
            check_range(self, name, 1)


@dataclass
class ExportConfig:
    """`lmtrain export`: write a checkpoint in another format."""

    ckpt: Optional[str] = None  # run directory or checkpoint directory
    format: str = "hf"  # hf: a Hugging Face save_pretrained folder (transformers loads it)
    out: Optional[str] = None  # the folder to write
    model_type: Optional[str] = None  # bert | roberta | gpt2 (None = from the checkpoint's family)


# command -> the schema of its composed config
SCHEMAS = {"pretrain": PretrainConfig, "generate": GenerateConfig, "evaluate": EvaluateConfig, "embed": EmbedConfig,
           "finetune": FinetuneConfig, "predict": PredictConfig, "export": ExportConfig}


def register_configs() -> None:
    """Register every schema with Hydra (as ``<command>_schema``) so YAML files are validated against them."""
    store = ConfigStore.instance()
    for command, schema in SCHEMAS.items():
        store.store(name=f"{command}_schema", node=schema)
