"""A whole `lmtrain pretrain` run against the same job written with `transformers`' Trainer, each a process
timed from its start to its exit.

The lmtrain side is `lmtrain pretrain model=bert model.size=mini trainer.max_steps=40 trainer.batch_size=16`
(BERT's default objective, MLM + NSP), timed by phase as in scripts/bench_whole_run.py. The other side is
scripts/whole_run_transformers.py: `BertForPreTraining` of the same size, the tokenizer lmtrain trained,
the same sentence pairs (read from lmtrain's example cache), `Trainer` with the same steps, batch,
learning rate, warmup, linear decay, AdamW settings and gradient clipping, a checkpoint at the last step
and an evaluation on the same held-out pairs. A first lmtrain run fills the data cache (neither side
tokenizes in the timed runs); then the runs alternate, so machine noise hits both alike. Both get the same
threads (``OMP_NUM_THREADS`` and ``torch.set_num_threads``); the `transformers` side runs with
``HF_HUB_OFFLINE=1`` and local files only. Needs `transformers` and `accelerate` (its Trainer needs both).

    python scripts/bench_whole_run_hf.py --runs 3 --threads 1
    python scripts/bench_whole_run_hf.py --runs 1 -- model=bert model.size=tiny trainer.max_steps=10
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from bench_whole_run import DEFAULT_OVERRIDES, PHASE_ENDS, one_run

SCRIPTS = Path(__file__).resolve().parent
TRANSFORMERS_RUN = SCRIPTS / "whole_run_transformers.py"
ROWS = ["start-up", "data", "assembly", "preflight", "training", "save", "evaluation", "plot", "exit", "total"]
assert set(PHASE_ENDS) <= set(ROWS)


def transformers_job(run_dir: Path, cache: Path, output_dir: Path, threads: int | None) -> dict[str, Any]:
    """The `transformers` side's job, read from a finished lmtrain run: its model, tokenizer, examples and recipe.

    Raises:
        SystemExit: the run is not a BERT trained with MLM + NSP, or its example cache is not the one expected.
    """
    checkpoints = sorted((run_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    model = json.loads((checkpoints[-1] / "model.json").read_text())
    if model["model_name"] != "bert" or model["objective"] != "mlm_nsp":
        sys.exit(
            f"the transformers side is BertForPreTraining (MLM + NSP); {run_dir} trained {model['model_name']} "
            f"with {model['objective']}: keep model=bert and its default objective"
        )
    examples = sorted(p.parent.parent for p in (cache / "examples").glob("*/train/meta.json"))
    if len(examples) != 1:
        sys.exit(f"expected one example cache under {cache / 'examples'}, found {len(examples)}")
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    spec, objective, roles = model["spec"], model["objective_config"], model["tokenizer_roles"]
    return {
        "threads": threads,
        "tokenizer": str(run_dir / "tokenizer.json"),
        "examples": str(examples[0]),
        "output_dir": str(output_dir),
        "special_tokens": {f"{role}_token": token for role, token in roles.items()},
        "model": {
            "vocab_size": spec["vocab_size"],
            "hidden_size": spec["d_model"],
            "num_hidden_layers": spec["n_layers"],
            "num_attention_heads": spec["n_heads"],
            "intermediate_size": spec["d_ff"],
            "hidden_act": spec["activation"],
            "hidden_dropout_prob": spec["dropout"],
            "attention_probs_dropout_prob": spec["attention_dropout"],
            "max_position_embeddings": spec["max_positions"],
            "type_vocab_size": spec["segment_vocab_size"],
            "layer_norm_eps": spec["layer_norm_eps"],
            "initializer_range": spec["init_std"],
            "pad_token_id": spec["pad_token_id"],
        },
        "masking": {
            "mlm_probability": objective["mask_prob"],
            "mask_replace_prob": objective["mask_token_prob"],
            "random_replace_prob": objective["random_token_prob"],
        },
        "training": training_arguments(cfg["trainer"], cfg["optim"]),
    }


def training_arguments(trainer: dict[str, Any], optim: dict[str, Any]) -> dict[str, Any]:
    """`TrainingArguments` for lmtrain's trainer and optim settings (the rest left at `transformers`' defaults)."""
    if optim["schedule"] != "linear" or optim["min_lr_ratio"] or optim["decay_steps"] or trainer["grad_accum"] != 1:
        sys.exit("the transformers side plans a linear schedule to zero over the run, without gradient accumulation")
    return {
        "max_steps": trainer["max_steps"],
        "per_device_train_batch_size": trainer["batch_size"],
        "per_device_eval_batch_size": trainer["batch_size"],
        "learning_rate": optim["lr"],
        "weight_decay": optim["weight_decay"],
        "adam_beta1": optim["betas"][0],
        "adam_beta2": optim["betas"][1],
        "adam_epsilon": optim["eps"],
        "lr_scheduler_type": "linear",
        "warmup_steps": optim["warmup_steps"] if optim["warmup_steps"] is not None else optim["warmup_ratio"],
        "max_grad_norm": trainer["grad_clip"],
        "seed": trainer["seed"],
        # one checkpoint, at the last step (lmtrain saves at the end of a run shorter than save_every)
        "save_steps": trainer["max_steps"],
    }


def transformers_seconds(log: str, started: float, ended: float) -> dict[str, float]:
    """Seconds of each phase of a `transformers` run from its ``phase NAME EPOCH`` lines, plus exit and total."""
    lines = [line.split() for line in log.splitlines() if line.startswith("phase ")]
    marks = sorted((float(at), name) for _, name, at in lines)
    seconds, previous = {}, started
    for at, name in marks:
        seconds[name], previous = at - previous, at
    seconds["exit"] = ended - previous
    seconds["total"] = ended - started
    return seconds


def transformers_run(job: dict[str, Any], job_file: Path) -> dict[str, float]:
    """Run scripts/whole_run_transformers.py once on ``job`` and time its phases."""
    job_file.write_text(json.dumps(job, indent=1))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if job["threads"]:
        env["OMP_NUM_THREADS"] = str(job["threads"])
    command = [sys.executable, str(TRANSFORMERS_RUN), str(job_file)]
    started = time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    ended = time.time()
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return transformers_seconds(done.stdout, started, ended)


def print_table(times: dict[str, list[dict[str, float]]]) -> None:
    """Each side's median seconds per phase ('-': no such phase) and transformers / lmtrain where both have it,
    then the whole run's ratio in each pair of runs and their median."""
    print(f"{'phase':<12}{'lmtrain':>12}{'transformers':>14}  transformers/lmtrain")
    for phase in ROWS:
        medians = {
            side: statistics.median(t[phase] for t in runs) if phase in runs[0] else None
            for side, runs in times.items()
        }
        cells = "".join(f"{'-' if m is None else f'{m:.2f}':>{w}}" for m, w in zip(medians.values(), (12, 14)))
        lm, hf = medians["lmtrain"], medians["transformers"]
        print(f"{phase:<12}{cells}" + (f"  {hf / lm:.2f}" if lm and hf is not None else ""))
    # a pair (run i of each side) ran back to back, so it saw the machine at about one speed: the median of
    # the pairs' ratios moves less than the ratio of the medians when the machine's speed drifts
    pairs = [hf["total"] / lm["total"] for lm, hf in zip(times["lmtrain"], times["transformers"])]
    print(
        "whole run, each pair back to back: "
        + ", ".join(f"{ratio:.2f}" for ratio in pairs)
        + f" (median {statistics.median(pairs):.2f})"
    )


def main() -> None:
    """Parse arguments, warm the data cache, time the two sides alternately, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side (median taken)")
    parser.add_argument("--threads", type=int, help="threads of both sides (OMP_NUM_THREADS, torch.set_num_threads)")
    parser.add_argument("overrides", nargs="*", help="after --: lmtrain's overrides (default: BERT mini, 40 steps)")
    args = parser.parse_args()
    overrides = args.overrides or DEFAULT_OVERRIDES
    missing = [name for name in ("transformers", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(f"the transformers side needs {' and '.join(missing)}: pip install 'transformers[torch]'")
    with tempfile.TemporaryDirectory(prefix="bench-whole-run-hf-") as folder:
        work = Path(folder)
        one_run(overrides, work / "cache", work / "warm-up", None, args.threads)  # fills the data cache
        times: dict[str, list[dict[str, float]]] = {"lmtrain": [], "transformers": []}
        for i in range(args.runs):
            times["lmtrain"].append(one_run(overrides, work / "cache", work / f"lmtrain-{i}", None, args.threads))
            job = transformers_job(work / "warm-up", work / "cache", work / f"transformers-{i}", args.threads)
            times["transformers"].append(transformers_run(job, work / f"job-{i}.json"))
            print(
                " ".join(f"{side} run {i + 1}: {t[-1]['total']:.2f} s," for side, t in times.items()),
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    print_table(times)


if __name__ == "__main__":
    main()
