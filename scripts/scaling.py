"""How lmtrain scales on one machine, measured: training throughput, data preparation, checkpoints.

Prints three tables:

1. Training tokens/s of `lmtrain pretrain` (BERT, bundled corpus) with 1 process x 1 thread,
   2 processes x 1 thread (`torchrun`, gloo, DDP; the batch is per process, so the work per
   process is the same) and 1 process x 2 threads, with the scaling efficiency of each against
   the first (tokens/s divided by the processes or threads it used).
2. The time to prepare (tokenize and build examples for) a generated corpus with 1 and 2
   preparing processes (`data.num_proc`).
3. Checkpoint save and load time under FSDP on 2 ranks, `trainer.checkpoint_format=full` against
   `sharded`, and the bytes each rank writes.

    python scripts/scaling.py                           # everything, about 10 minutes on 2 cores
    python scripts/scaling.py --only training --steps 60 --size small
    python scripts/scaling.py --corpus-mb 100 --only preparation --tokenizer-threads 1

Every measurement runs lmtrain's own command line in a subprocess, as a user would.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

SECTIONS = ("training", "preparation", "checkpoints")
CHECKPOINT_VOCAB = 30_000


def lmtrain(
    args: list[str], workdir: Path, nproc: int = 1, threads: int = 1, timeout: int = 1800
) -> subprocess.CompletedProcess:
    """Run ``lmtrain <args>`` with ``nproc`` processes (torchrun above 1) of ``threads`` threads each."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HYDRA_FULL_ERROR": "0"}
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "lmtrain"]
        if nproc > 1
        else [sys.executable, "-m", "lmtrain"]
    )
    out = subprocess.run([*launcher, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        sys.exit(f"lmtrain {' '.join(args)} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return out


def steady_tokens_per_s(run_dir: Path, skip: int) -> float:
    """Median of the logged ``train/tokens_per_s`` after the first ``skip`` log windows (warm-up)."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [e["train/tokens_per_s"] for e in events if "train/tokens_per_s" in e]
    return statistics.median(rates[skip:] or rates)


def training_rows(args, workdir: Path) -> list[dict]:
    """Tokens/s and scaling efficiency for each (processes, threads) layout."""
    common = [
        "pretrain",
        "model=bert",
        f"model.size={args.size}",
        f"data.cache_dir={workdir / 'cache'}",
        f"trainer.max_steps={args.steps}",
        f"trainer.batch_size={args.batch}",
        "trainer.max_time=null",
        "trainer.eval_every=0",
        "trainer.save_every=0",
        "trainer.log_every=5",
        "trainer.progress=false",
        "trainer.cpu_kernels=torch",
    ]
    lmtrain([*common, "trainer.max_steps=1", f"hydra.run.dir={workdir / 'warm'}"], workdir)  # tokenize once
    rows = []
    for nproc, threads in ((1, 1), (2, 1), (1, 2)):
        run_dir = workdir / f"train-{nproc}x{threads}"
        lmtrain([*common, f"hydra.run.dir={run_dir}"], workdir, nproc=nproc, threads=threads)
        rate = steady_tokens_per_s(run_dir, skip=1)
        rows.append(
            {
                "layout": f"{nproc} process{'es' if nproc > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}",
                "workers": nproc * threads,
                "tokens_per_s": rate,
            }
        )
    for row in rows:
        row["efficiency"] = row["tokens_per_s"] / (row["workers"] * rows[0]["tokens_per_s"])
    return rows


def training_table(rows: list[dict], args) -> Table:
    """The training-throughput table."""
    table = Table(title=f"training: BERT {args.size}, batch {args.batch} per process, {args.steps} steps")
    for column in ("layout", "tokens/s", "scaling efficiency"):
        table.add_column(column, justify="left" if column == "layout" else "right")
    for row in rows:
        table.add_row(row["layout"], f"{row['tokens_per_s']:,.0f}", f"{row['efficiency']:.2f}")
    return table


def preparation_rows(args, workdir: Path) -> list[dict]:
    """Seconds to prepare a generated corpus of ``--corpus-mb`` with 1 and 2 processes (same examples, checked)."""
    from corpus_memory import source_sentences, write_corpus  # scripts/ is on the path when run as a script
    from preparation_time import preparation_seconds

    corpus = workdir / "corpus.txt"
    documents = write_corpus(corpus, args.corpus_mb, source_sentences(), seed=args.corpus_mb)
    rows = []
    for num_proc in (1, 2):
        timed = preparation_seconds(corpus, num_proc, workdir / "preparation-cache", args.preparation_model)
        rows.append(
            {
                "num_proc": num_proc,
                "seconds": timed.seconds,
                "examples": timed.examples,
                "digest": timed.digest,
                "megabytes": corpus.stat().st_size / 1e6,
                "documents": documents,
            }
        )
    if rows[0]["digest"] != rows[1]["digest"]:
        sys.exit("the examples prepared by 1 and 2 processes differ")
    return rows


def preparation_table(rows: list[dict], args) -> Table:
    """The data-preparation table."""
    table = Table(
        title=f"preparation: {rows[0]['megabytes']:.0f} MB generated corpus ({rows[0]['documents']:,} "
        f"documents), {args.preparation_model} examples, tokenizer trained beforehand, "
        f"{args.tokenizer_threads or 'all'} tokenizer thread(s) per process"
    )
    for column in ("data.num_proc", "seconds", "MB/s", "speed-up", "examples"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["num_proc"]),
            f"{row['seconds']:.1f}",
            f"{row['megabytes'] / row['seconds']:.2f}",
            f"{rows[0]['seconds'] / row['seconds']:.2f}",
            f"{row['examples']:,}",
        )
    return table


def checkpoint_worker(folder: Path, checkpoint_format: str, size: str, vocab: int) -> None:
    """Under torchrun: shard a BERT of ``size`` with FSDP, take one AdamW step, then time one save and one load.

    Rank 0 prints one JSON line: seconds to save and to load (slowest rank, between barriers) and
    the bytes each rank wrote.
    """
    import torch

    from lmtrain.config.training import TrainerConfig
    from lmtrain.models.language_model import LanguageModel
    from lmtrain.models.spec import SIZES, TransformerSpec
    from lmtrain.training.checkpoint_format import CheckpointFormat
    from lmtrain.training.distributed import Distributed
    from lmtrain.training.sharding import fully_shard_step

    dist = Distributed.from_env("fsdp", "cpu")
    n_layers, d_model, n_heads, d_ff = SIZES[size]
    model = LanguageModel(
        TransformerSpec(vocab_size=vocab, n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_ff=d_ff), ("mlm",)
    )
    optimizer = torch.optim.AdamW(model.parameters())
    cpu = torch.device("cpu")
    model = fully_shard_step(model, model, optimizer, TrainerConfig(strategy="fsdp"), dist, cpu)
    for parameter in model.parameters():  # one step, so the checkpoint holds AdamW's moments too
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    writer = CheckpointFormat(checkpoint_format, model, optimizer, dist)
    dist.barrier()
    started = time.perf_counter()
    checkpoint = writer.save(folder / "checkpoints", 1, {"family": "transformer"}, {"step": 1}, None)
    dist.barrier()
    saved = time.perf_counter()
    state = None if checkpoint_format == "sharded" else torch.load(checkpoint / "trainer_state.pt", weights_only=True)
    writer.load(checkpoint, state if state is not None else {})
    dist.barrier()
    loaded = time.perf_counter()
    if dist.is_main:
        per_rank = [0] * dist.world_size
        for file in checkpoint.rglob("*"):
            if file.is_file():  # DCP names each rank's shard file __<rank>_<n>.distcp; rank 0 writes the rest
                rank = int(file.name[2:].split("_")[0]) if file.suffix == ".distcp" else 0
                per_rank[rank] += file.stat().st_size
        print(json.dumps({"save_s": saved - started, "load_s": loaded - saved, "bytes_per_rank": per_rank}))
    dist.close()


def checkpoint_rows(args, workdir: Path) -> list[dict]:
    """Save and load times, and bytes per rank, of 2 FSDP ranks for each checkpoint format (median of repeats)."""
    rows = []
    for checkpoint_format in ("full", "sharded"):
        runs = []
        for repeat in range(args.repeats):
            folder = workdir / f"checkpoint-{checkpoint_format}-{repeat}"
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    "--nproc_per_node=2",
                    __file__,
                    "--checkpoint-worker",
                    str(folder),
                    checkpoint_format,
                    "--checkpoint-size",
                    args.checkpoint_size,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            if out.returncode != 0:
                sys.exit(f"the {checkpoint_format} checkpoint worker failed:\n{out.stderr[-3000:]}")
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        rows.append(
            {
                "format": checkpoint_format,
                "save_s": statistics.median(r["save_s"] for r in runs),
                "load_s": statistics.median(r["load_s"] for r in runs),
                "bytes_per_rank": runs[0]["bytes_per_rank"],
            }
        )
    return rows


def checkpoint_table(rows: list[dict], args) -> Table:
    """The checkpoint table."""
    table = Table(
        title=f"checkpoints: BERT {args.checkpoint_size} (vocabulary {CHECKPOINT_VOCAB:,}) with AdamW state, "
        f"FSDP on 2 ranks, median of {args.repeats}"
    )
    for column in ("format", "save s", "load s", "MiB written by rank 0", "by rank 1"):
        table.add_column(column, justify="left" if column == "format" else "right")
    for row in rows:
        table.add_row(
            row["format"],
            f"{row['save_s']:.2f}",
            f"{row['load_s']:.2f}",
            *(f"{b / 2**20:,.1f}" for b in row["bytes_per_rank"]),
        )
    return table


def main() -> None:
    """Run the chosen sections and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section (repeatable)")
    parser.add_argument("--size", default="mini", help="model.size of the training runs (mini, small, ...)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per layout")
    parser.add_argument("--batch", type=int, default=16, help="trainer.batch_size (per process)")
    parser.add_argument("--corpus-mb", type=int, default=100, help="size of the generated corpus to prepare")
    parser.add_argument("--preparation-model", default="gpt", help="whose examples to prepare (gpt, roberta, bert)")
    parser.add_argument(
        "--tokenizer-threads",
        type=int,
        help="threads of each process's tokenizer (RAYON_NUM_THREADS); default: all cores",
    )
    parser.add_argument("--checkpoint-size", default="medium", help="model size of the checkpoint measurement")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each checkpoint measurement")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--checkpoint-worker", nargs=2, metavar=("FOLDER", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.checkpoint_worker:
        checkpoint_worker(
            Path(args.checkpoint_worker[0]), args.checkpoint_worker[1], args.checkpoint_size, CHECKPOINT_VOCAB
        )
        return
    if args.tokenizer_threads:  # read when `tokenizers` first starts its pool; the workers inherit it
        os.environ["RAYON_NUM_THREADS"] = str(args.tokenizer_threads)
    console, results = Console(), {}
    with tempfile.TemporaryDirectory(prefix="lmtrain-scaling-") as tmp:
        workdir = Path(tmp)
        for section in args.only or SECTIONS:
            started = time.perf_counter()
            if section == "training":
                results["training"] = training_rows(args, workdir)
                console.print(training_table(results["training"], args))
            elif section == "preparation":
                results["preparation"] = preparation_rows(args, workdir)
                console.print(preparation_table(results["preparation"], args))
            elif section == "checkpoints":
                results["checkpoints"] = checkpoint_rows(args, workdir)
                console.print(checkpoint_table(results["checkpoints"], args))
            console.print(f"[dim]{section}: {time.perf_counter() - started:.0f} s[/dim]")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
