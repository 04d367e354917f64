"""Held-out quality of `trainer.precision=bf16` against fp32 on CPU: the same runs, two seeds each.

Runs ``lmtrain pretrain`` once per (precision, seed), fp32 and bf16 alternately, the same steps, each in
a folder of its own under ``--out`` (made here; it must not exist yet), then reads each run's held-out
evaluation from its ``summary.json`` (in bf16 runs that evaluation runs in bf16 too) and evaluates each
final checkpoint again with ``lmtrain evaluate`` (always fp32: the same yardstick for every run). The
table gives each run, the bf16-minus-fp32 difference of the mean held-out loss (and of each seed's pair),
and the seed-to-seed spread of each precision: the noise the difference is judged against ("within the
noise": the mean difference is at most the fp32 runs' max - min). The four default
runs took 19 minutes on a 2-core Xeon (AMX-BF16) shared at load average 4 to 7, the bf16 ones 0.5x to 0.7x
the time of the fp32 ones; the losses do not depend on the load.

    python scripts/bf16_quality.py --out bf16-quality    # GPT tiny, 300 steps of 32 x 128, one thread each
    python scripts/bf16_quality.py --out DIR --steps 700 --seeds 1 2 3 -- model.size=mini   # other overrides

On a CPU without native bf16 arithmetic (AVX512-BF16, AMX-BF16) the bf16 runs are emulated and slow.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PRECISIONS = ("fp32", "bf16")


def run_lmtrain(arguments: list[str], threads: int) -> float:
    """Run ``python -m lmtrain <arguments>`` on ``threads`` threads; its wall seconds. Exits with its log on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lmtrain", *arguments], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"`lmtrain {' '.join(arguments)}` failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started


def held_out(summary_file: Path) -> tuple[float, float]:
    """(eval/loss, eval/ppl) of a ``summary.json``."""
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    return summary["eval/loss"], summary["eval/ppl"]


def one_run(out: Path, precision: str, seed: int, args) -> dict:
    """Pretrain in ``precision`` with ``seed``, then evaluate its last checkpoint in fp32: the run's figures."""
    run_dir = out / f"{precision}-seed{seed}"
    overrides = [
        f"model={args.model}",
        f"trainer.precision={precision}",
        f"trainer.seed={seed}",
        f"trainer.max_steps={args.steps}",
        f"trainer.eval_every={args.steps}",
        f"trainer.save_every={args.steps}",
        "trainer.progress=false",
        f"hydra.run.dir={run_dir}",
        *args.overrides,
    ]
    seconds = run_lmtrain(["pretrain", *overrides], args.threads)
    loss, ppl = held_out(run_dir / "summary.json")
    eval_dir = out / f"{precision}-seed{seed}-fp32-eval"
    run_lmtrain(["evaluate", f"ckpt={run_dir / 'checkpoints' / f'step-{args.steps}'}", f"hydra.run.dir={eval_dir}"], 1)
    fp32_loss, fp32_ppl = held_out(eval_dir / "summary.json")
    return {
        "precision": precision,
        "seed": seed,
        "loss": loss,
        "ppl": ppl,
        "fp32_eval_loss": fp32_loss,
        "fp32_eval_ppl": fp32_ppl,
        "seconds": seconds,
    }


def spread(values: list[float]) -> float:
    """Seed-to-seed spread: max - min (with two seeds, the gap between them)."""
    return max(values) - min(values)


def report(runs: list[dict]) -> str:
    """The runs as a Markdown table, then the difference of means and each precision's seed spread."""
    lines = [
        "| precision | seed | held-out loss (run's own eval) | ppl | loss re-evaluated in fp32 | ppl | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['precision']} | {r['seed']} | {r['loss']:.4f} | {r['ppl']:.1f} | "
            f"{r['fp32_eval_loss']:.4f} | {r['fp32_eval_ppl']:.1f} | {r['seconds']:.0f} |"
        )
    lines.append("")
    for key, what in (("loss", "the run's own evaluation"), ("fp32_eval_loss", "re-evaluated in fp32")):
        by = {p: {r["seed"]: r[key] for r in runs if r["precision"] == p} for p in PRECISIONS}
        difference = statistics.mean(by["bf16"].values()) - statistics.mean(by["fp32"].values())
        paired = ", ".join(f"{by['bf16'][seed] - by['fp32'][seed]:+.4f}" for seed in by["fp32"])
        noise = spread(list(by["fp32"].values()))
        verdict = "within" if abs(difference) <= noise else "outside"
        lines.append(
            f"- {what}: mean loss bf16 - fp32 = {difference:+.4f} (same seed: {paired}); seed spread fp32 "
            f"{noise:.4f}, bf16 {spread(list(by['bf16'].values())):.4f}: the difference is {verdict} the fp32 "
            "seed-to-seed noise"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments, run every (precision, seed), print the table; the figures go to ``<out>/runs.json``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="a new folder for the runs (must not exist)")
    parser.add_argument("--model", default="gpt", help="model preset (gpt, bert, roberta)")
    parser.add_argument("--steps", type=int, default=300, help="training steps of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="trainer.seed values")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the training runs")
    parser.add_argument("overrides", nargs="*", help="more `lmtrain pretrain` overrides (after --)")
    args = parser.parse_args()
    print(report(run_all(Path(args.out), PRECISIONS, args, one_run)))


def run_all(out: Path, settings: tuple[str, ...], args, one: Callable[[Path, str, int, Any], dict]) -> list[dict]:
    """``one(out, setting, seed, args)`` for every seed of ``args.seeds`` and setting, in a new folder ``out``.

    Each run's figures are printed as they come, and all of them written to ``<out>/runs.json``.
    """
    try:
        out.mkdir(parents=True)
    except FileExistsError:
        sys.exit(f"--out {out} exists already: name a new folder (the runs go there)")
    runs = []
    for seed in args.seeds:
        for setting in settings:
            runs.append(one(out, setting, seed, args))
            print(json.dumps(runs[-1]), flush=True)
    (out / "runs.json").write_text(json.dumps(runs, indent=2), encoding="utf-8")
    return runs


if __name__ == "__main__":
    main()
