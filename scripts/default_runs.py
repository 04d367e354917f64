"""Run every default command as a new user would and print what each one reached, and in how long.

Each command runs in a fresh folder with an empty data cache (so tokenizer training and
tokenization count, as on a first run), one after the other, and the table shows its held-out
results beside the trivial baselines it reports, with the wall time around the whole command.

    python scripts/default_runs.py                          # every row, about 25 minutes on 2 cores
    python scripts/default_runs.py --only embed             # rows whose command contains "embed"
    python scripts/default_runs.py --wikitext ../shared/data/wikitext2   # adds embed rows on WikiText-2 valid + test

The README's "Measured default runs" table comes from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text


@dataclass
class Row:
    """One default command: its arguments (``{elmo}`` names an earlier run) and the keys to show."""

    name: str
    args: list[str]
    shown: list[str]
    run_dir: str = ""
    summary: dict = field(default_factory=dict)
    wall_s: float = 0.0


def default_rows(wikitext: Path | None) -> list[Row]:
    """The default commands in the order they depend on each other."""
    mlm, lm = ["eval/mlm_acc", "baseline/mlm_majority_acc"], ["eval/ppl", "baseline/unigram_ppl"]
    similarity = [
        "eval/wordsim353_spearman",
        "eval/simlex999_spearman",
        "eval/wordsim353_oov",
        "eval/analogy_accuracy",
        "corpus_tokens",
        "vocab_size",
    ]
    rows = [
        Row("bert", ["pretrain", "model=bert"], [*mlm, "eval/nsp_acc"]),
        Row("roberta", ["pretrain", "model=roberta"], mlm),
        Row("gpt", ["pretrain", "model=gpt"], lm),
        Row("elmo", ["pretrain", "model=elmo"], ["eval/fwd_ppl", "eval/bwd_ppl", *lm]),
        Row("ner-elmo", ["finetune", "task=ner", "init={elmo}"], ["eval/f1", "baseline/lexicon_f1"]),
        Row("word2vec", ["embed"], similarity),
        Row("glove", ["embed", "method=glove"], similarity),
    ]
    if wikitext is not None:
        files = f"embed.train_files=[{wikitext / 'valid.txt'},{wikitext / 'test.txt'}]"
        rows += [
            Row("word2vec-wikitext", ["embed", files], similarity),
            Row("glove-wikitext", ["embed", "method=glove", files], similarity),
        ]
    return rows


def run_row(row: Row, workdir: Path, done: dict[str, Row]) -> None:
    """Run one command in its own run directory; fill in its summary and wall time."""
    row.run_dir = str(workdir / row.name)
    args = [a.format(**{name: r.run_dir for name, r in done.items()}) for a in row.args]
    if args[0] != "embed":  # embed prints no step progress
        args.append("trainer.progress=false")
    if args[0] == "pretrain":  # a fresh data cache: tokenizer training and tokenization count
        args.append(f"data.cache_dir={workdir / 'cache'}")
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "lmtrain", *args, f"hydra.run.dir={row.run_dir}"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    row.wall_s = time.perf_counter() - started
    if out.returncode != 0:  # shown in the table; the other rows still run
        row.summary = {"error": f"exit {out.returncode}: {out.stderr.strip().splitlines()[-1][:300]}"}
        return
    row.summary = json.loads((Path(row.run_dir) / "summary.json").read_text())


def results_table(rows: list[Row]) -> Table:
    """Command, shown results, wall time."""
    table = Table(title="default commands, first run (tokenizer training and tokenization included)")
    for column in ("command", "results", "wall"):
        table.add_column(column)
    for row in rows:
        shown = row.summary.get("error") or ", ".join(
            f"{key.split('/')[-1]} {_number(row.summary.get(key))}" for key in row.shown if key in row.summary
        )
        table.add_row(
            Text("lmtrain " + " ".join(row.args)), Text(shown), f"{row.wall_s // 60:.0f} min {row.wall_s % 60:.0f} s"
        )  # Text: brackets are not markup
    return table


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)


def main() -> None:
    """Run the chosen default commands and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="only rows whose name contains this text")
    parser.add_argument("--wikitext", type=Path, help="WikiText-2 folder with valid.txt and test.txt")
    parser.add_argument("--json", type=Path, help="also write every summary here (after each command)")
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep the runs")
    args = parser.parse_args()
    rows = [r for r in default_rows(args.wikitext) if args.only in r.name]
    console, done = Console(), {}
    with tempfile.TemporaryDirectory(prefix="lmtrain-defaults-") as tmp:
        workdir = args.keep or Path(tmp)
        if args.keep:
            workdir.mkdir(parents=True)
        for row in rows:
            console.print(f"lmtrain {' '.join(row.args)} ...", style="dim", markup=False)
            run_row(row, workdir, done)
            done[row.name] = row
            if args.json:
                args.json.write_text(
                    json.dumps(
                        {r.name: {"args": r.args, "wall_s": r.wall_s, "summary": r.summary} for r in done.values()},
                        indent=2,
                        default=str,
                    )
                )
    console.print(results_table(rows))


if __name__ == "__main__":
    main()
