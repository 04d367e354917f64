"""Training-step and generation speed of lmtrain against Hugging Face `transformers`, as ratios.

Same shapes, batch, sequence length, optimizer (AdamW, foreach) and thread count, in one process,
measurements of the two implementations interleaved so machine noise hits both alike. Prints a
table of medians; `--json` writes the raw figures too.

    python scripts/bench.py                       # mini and small, BERT / RoBERTa / GPT, fp32
    python scripts/bench.py --sizes mini --repeats 3 --steps 5
    python scripts/bench.py --device cuda --precision bf16

Needs the dev extra (`pip install -e ".[dev]"`) for `transformers`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext

import torch
from rich.console import Console
from rich.table import Table

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.generation import Sampling, generate
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import SIZES, TransformerSpec
from lmtrain.objectives import build_objective

VOCAB = 8000
PRESETS = {  # model -> (spec switches, objective, HF class name)
    "bert": (dict(causal=False, norm="post", segment_vocab_size=2, activation="gelu", layer_norm_eps=1e-12,
                  embedding_norm=True, final_norm=False), "mlm_nsp", "BertForPreTraining"),
    "roberta": (dict(causal=False, norm="post", segment_vocab_size=0, position_offset=2, activation="gelu",
                     layer_norm_eps=1e-5, embedding_norm=True, final_norm=False), "mlm", "RobertaForMaskedLM"),
    "gpt": (dict(causal=True, norm="pre", segment_vocab_size=0, activation="gelu_tanh", layer_norm_eps=1e-5,
                 embedding_norm=False, final_norm=True), "clm", "GPT2LMHeadModel"),
}


def hf_model(model: str, spec: TransformerSpec):
    """The `transformers` model of the same shape (random weights, SDPA attention)."""
    import transformers

    common = dict(vocab_size=spec.vocab_size)
    if model == "gpt":
        config = transformers.GPT2Config(n_embd=spec.d_model, n_layer=spec.n_layers, n_head=spec.n_heads,
                                         n_inner=spec.d_ff, n_positions=spec.max_positions, **common)
    else:
        cls = transformers.BertConfig if model == "bert" else transformers.RobertaConfig
        extra = {"max_position_embeddings": spec.max_positions + spec.position_offset, "pad_token_id": 1} \
            if model == "roberta" else {"max_position_embeddings": spec.max_positions}
        if model == "roberta":
            extra["type_vocab_size"] = 1
        config = cls(hidden_size=spec.d_model, num_hidden_layers=spec.n_layers, num_attention_heads=spec.n_heads,
                     intermediate_size=spec.d_ff, **extra, **common)
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


def ours_step(model, objective, optimizer, batch):
    """One lmtrain training step."""
    out = objective(model, batch, objective.count_targets(batch))
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


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul throughput (FLOP/s): the ceiling for model FLOP utilisation."""
    n = 2048 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    seconds = timed(lambda: a @ b, 5 if device.type == "cpu" else 50, device)
    return 2 * n ** 3 / seconds


def train_flops_per_token(spec: TransformerSpec, seq: int) -> float:
    """6 x non-embedding parameters + attention score FLOPs (PaLM's estimate), per token."""
    per_layer = 4 * spec.d_model ** 2 + 2 * spec.d_model * spec.d_ff
    return 6 * spec.n_layers * per_layer + 12 * spec.n_layers * spec.d_model * seq


def bench_training(model_name: str, size: str, args, device, autocast, peak: float) -> dict:
    """Median tokens/s of both implementations for one preset and size."""
    n_layers, d_model, n_heads, d_ff = SIZES[size]
    switches, objective_name, _ = PRESETS[model_name]
    spec = TransformerSpec(vocab_size=VOCAB, n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_ff=d_ff,
                           pad_token_id=1 if model_name == "roberta" else 0, **switches)
    objective = build_objective(objective_name)
    ours = LanguageModel(spec, objective.head_names).to(device).train()
    theirs = hf_model(model_name, spec).to(device).train()
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4, foreach=True)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4, foreach=True)
    batch = make_batch(model_name, args.batch, args.seq, device)
    tokens = args.batch * args.seq

    def run_ours():
        with autocast():
            ours_step(ours, objective, opt_ours, batch)

    def run_theirs():
        with autocast():
            hf_step(theirs, opt_theirs, batch, model_name)

    for fn in (run_ours, run_theirs):  # warm-up: allocator, kernels, optimizer state
        timed(fn, 2, device)
    ours_s, theirs_s = [], []
    for _ in range(args.repeats):
        ours_s.append(timed(run_ours, args.steps, device))
        theirs_s.append(timed(run_theirs, args.steps, device))
    ours_tps, theirs_tps = tokens / statistics.median(ours_s), tokens / statistics.median(theirs_s)
    mfu = ours_tps * train_flops_per_token(spec, args.seq) / peak
    return {"bench": "train", "model": model_name, "size": size, "lmtrain_tok_s": ours_tps,
            "hf_tok_s": theirs_tps, "ratio": ours_tps / theirs_tps, "lmtrain_mfu": mfu}


def bench_generation(size: str, batch: int, args, device) -> dict:
    """Greedy decoding of ``args.new_tokens`` tokens with a KV cache: lmtrain vs `generate`."""
    n_layers, d_model, n_heads, d_ff = SIZES[size]
    spec = TransformerSpec(vocab_size=VOCAB, n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_ff=d_ff,
                           dropout=0.0, attention_dropout=0.0, **PRESETS["gpt"][0])
    ours = LanguageModel(spec, ["lm"]).to(device).eval()
    theirs = hf_model("gpt", spec).to(device).eval()
    prompt = torch.randint(5, VOCAB, (batch, 16), generator=torch.Generator().manual_seed(1)).to(device)
    n = args.new_tokens

    def run_ours():
        with torch.no_grad():
            generate(ours, prompt.tolist(), max_new_tokens=n, sampling=Sampling(greedy=True), eos_id=None, pad_id=0)

    def run_theirs():
        with torch.no_grad():
            theirs.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, min_new_tokens=n,
                            do_sample=False, pad_token_id=0)

    for fn in (run_ours, run_theirs):
        timed(fn, 1, device)
    ours_s, theirs_s = [], []
    for _ in range(args.repeats):
        ours_s.append(timed(run_ours, 1, device))
        theirs_s.append(timed(run_theirs, 1, device))
    ours_tps, theirs_tps = batch * n / statistics.median(ours_s), batch * n / statistics.median(theirs_s)
    return {"bench": f"generate b={batch}", "model": "gpt", "size": size, "lmtrain_tok_s": ours_tps,
            "hf_tok_s": theirs_tps, "ratio": ours_tps / theirs_tps}


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
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if args.precision == "bf16" else nullcontext
    peak = matmul_peak(device, dtype)
    rows = [bench_training(m, s, args, device, autocast, peak) for s in args.sizes for m in args.models]
    if not args.no_generation:
        rows += [bench_generation(s, b, args, device) for s in args.sizes for b in (1, 8)]
    table = Table(title=f"lmtrain vs transformers — {device.type}, {args.precision}, {torch.get_num_threads()} threads, "
                        f"batch {args.batch} x seq {args.seq}, matmul peak {peak / 1e9:.0f} GFLOP/s")
    for column in ("bench", "model", "size", "lmtrain tok/s", "transformers tok/s", "ratio", "lmtrain MFU"):
        table.add_column(column, justify="right" if "tok" in column or column in ("ratio", "lmtrain MFU") else "left")
    for r in rows:
        mfu = f"{r['lmtrain_mfu']:.1%}" if "lmtrain_mfu" in r else "-"
        table.add_row(r["bench"], r["model"], r["size"], f"{r['lmtrain_tok_s']:,.0f}", f"{r['hf_tok_s']:,.0f}",
                      f"{r['ratio']:.2f}x", mfu)
    Console().print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
