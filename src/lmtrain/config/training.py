"""Schemas of the groups every training command shares: tokenizer, optimizer, trainer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lmtrain.config.checks import ConfigRangeError, check_range
from lmtrain.config.durations import parse_duration
from lmtrain.errors import UserError

PACKING_MODES = ("auto", "on", "off")  # trainer.packing's values


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
class OptimConfig:
    """AdamW and the learning-rate schedule."""

    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.01  # decoupled weight decay (never on biases, norms, embeddings' norms)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam's (beta1, beta2)
    eps: float = 1e-6  # Adam's epsilon (added to the root of the second moment)
    schedule: str = "linear"  # linear | cosine | constant (all after warmup)
    warmup_steps: Optional[int] = None  # None = warmup_ratio * max_steps
    warmup_ratio: float = 0.06  # warmup as a share of the planned steps (used when warmup_steps is None)
    min_lr_ratio: float = 0.0  # final learning rate as a share of the peak
    # steps over which warmup_ratio and the decay are planned (None = the steps the run takes); a resumed
    # run with a larger max_steps continues its schedule to the new total unless this is set
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

    max_steps: Optional[int] = 800  # optimizer steps (null: the fine-tuning task's default for the backbone)
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
    seed: int = 42  # seed of the weights, data order and masks: the same seed gives the same run
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    strategy: str = "auto"  # auto (DDP when started by torchrun with several processes) | single | ddp | fsdp
    # full (rank 0 writes whole weights: model.safetensors) | sharded (every rank writes its own shards with
    # torch.distributed.checkpoint, no gather; for models whose full state does not fit one host)
    checkpoint_format: str = "full"
    precision: str = "fp32"  # fp32 | bf16 (CUDA, or CPU: fastest with AMX/AVX512-BF16) | fp16 (CUDA only, grad scaler)
    compile: bool = False  # torch.compile the training step (falls back to eager where it cannot compile)
    num_workers: int = 0  # DataLoader worker processes
    bucket_by_length: bool = False  # batch training examples of similar length (fine-tuning sets; presets turn it on)
    # Transformer backbones in training: skip a padded batch's padding (same math, fewer tokens): token-wise layers
    # on the real tokens alone, attention in the padded rows or in fewer rows packed with whole sentences, each
    # attending only to itself. auto (from 1/16 padding; attention packed when at most 3/4 of the rows remain;
    # never under trainer.compile) | on (whenever there is padding; attention packed whenever it saves a row) | off
    packing: str = "auto"
    progress: bool = True  # rich progress bar (off for logs and CI)
    preflight: bool = True  # before training: longest batch, one evaluation batch, a checkpoint round trip, estimates
    # metric sinks: jsonl (metrics.jsonl, always on) | tensorboard (<run dir>/tb) | wandb
    loggers: list[str] = field(default_factory=lambda: ["jsonl"])
    monitor: Optional[str] = None  # eval metric that picks checkpoints/best (None = the objective's main one)
    early_stopping_patience: int = 0  # stop after this many evaluations without improvement; 0 = off
    # auto (onednn or torch-matmul, whichever's products measure faster here) | onednn (oneDNN's products, lmtrain's
    # dropout) | torch-matmul (PyTorch's products, lmtrain's dropout) | torch (PyTorch's ops throughout)
    cpu_kernels: str = "auto"
    # CUDA: fp32 matrix products in TF32 (Ampere and newer; 10-bit mantissa inputs, fp32 sums); false = full fp32
    tf32: bool = True
    dist_timeout: str = "30m"  # how long a collective of the training step (NCCL, gloo) may wait for the other ranks
    # how long host-side waits may last: ranks waiting while rank 0 trains the tokenizer, a node prepares its data
    # or rank 0 writes a checkpoint (over a CPU group, outside NCCL, so a large corpus does not time NCCL out)
    host_timeout: str = "6h"
    # trainer.strategy=fsdp with trainer.precision=bf16: reduce the gradients in fp32 (true) or in bf16 (unset or
    # false: PyTorch's default, half the bytes); fp32 keeps sums over many ranks and long grad_accum windows exact
    fsdp_reduce_fp32: Optional[bool] = None
    # trainer.strategy=fsdp: R replica groups (HSDP: shard inside a group, e.g. a node, replicate across the R);
    # must divide the number of processes; unset = one group, every rank shards every parameter
    fsdp_replicas: Optional[int] = None

    def __post_init__(self) -> None:
        for name in (
            "max_steps",
            "max_epochs",
            "batch_size",
            "grad_accum",
            "log_every",
            "eval_batches",
            "fsdp_replicas",
        ):
            check_range(self, name, 1)
        for name in (
            "grad_clip",
            "eval_every",
            "eval_every_epochs",
            "save_every",
            "keep_last",
            "num_workers",
            "early_stopping_patience",
        ):
            check_range(self, name, 0)
        if self.cpu_kernels not in ("auto", "onednn", "torch-matmul", "torch"):
            raise ConfigRangeError("cpu_kernels", "one of auto | onednn | torch-matmul | torch", self.cpu_kernels)
        self._check_packing()
        if self.checkpoint_format not in ("full", "sharded"):
            raise ConfigRangeError("checkpoint_format", "one of full | sharded", self.checkpoint_format)
        self._check_fsdp_keys()
        for name in ("dist_timeout", "host_timeout"):
            try:
                parse_duration(getattr(self, name), key=f"trainer.{name}")
            except UserError:
                raise ConfigRangeError(
                    name, "a positive duration (90s, 30m, 6h, 01:30:00)", getattr(self, name)
                ) from None
        if self.max_time is not None:
            try:
                parse_duration(self.max_time)
            except UserError:
                raise ConfigRangeError(
                    "max_time", "a positive duration (90s, 5m, 1h30m, 01:30:00)", self.max_time
                ) from None

    def _check_packing(self) -> None:
        """Refuse a packing mode that is not one, and ``packing=on`` with ``compile=true``."""
        if self.packing not in PACKING_MODES:
            quoting = 'a YAML file reads on/off unquoted as true/false: write "on" or "off"'
            raise ConfigRangeError(
                "packing",
                "one of " + " | ".join(PACKING_MODES),
                self.packing,
                quoting if self.packing in ("True", "False") else "",
            )
        if self.packing == "on" and self.compile:
            raise ConfigRangeError(
                "packing",
                "auto or off with trainer.compile=true",
                self.packing,
                "a packed batch changes shape from step to step and its mask is built outside the compiled "
                "graph, so packing runs only eagerly; drop trainer.compile=true to pack, or set "
                "trainer.packing=auto to compile without packing",
            )

    def _check_fsdp_keys(self) -> None:
        """Refuse ``fsdp_*`` keys set where they would change nothing (another strategy, another precision)."""
        typed = {"fsdp_replicas": self.fsdp_replicas, "fsdp_reduce_fp32": _lower(self.fsdp_reduce_fp32)}
        for name, value in typed.items():
            if value is not None and self.strategy != "fsdp":
                raise ConfigRangeError(
                    name,
                    "unset unless trainer.strategy=fsdp",
                    value,
                    f"this run uses trainer.strategy={self.strategy}, where it changes nothing; "
                    "add trainer.strategy=fsdp or drop the key",
                )
        if self.fsdp_reduce_fp32 is not None and self.precision != "bf16":
            raise ConfigRangeError(
                "fsdp_reduce_fp32",
                "unset unless trainer.precision=bf16",
                typed["fsdp_reduce_fp32"],
                f"it picks the dtype bf16 gradients are reduced in, and trainer.precision="
                f"{self.precision} keeps them in fp32; add trainer.precision=bf16 or drop the key",
            )


def _lower(flag: Optional[bool]) -> Optional[str]:
    """A boolean as the user types it (``true``), for messages; None stays None."""
    return None if flag is None else str(flag).lower()
