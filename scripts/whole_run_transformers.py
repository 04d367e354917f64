"""BERT pretraining (masked LM + next-sentence prediction) as a `transformers` user writes it: the other side
of scripts/bench_whole_run_hf.py, run in its own process and timed from its start to its exit.

`BertForPreTraining`, `PreTrainedTokenizerFast` over a local tokenizer.json, `DataCollatorForLanguageModeling`
(dynamic masking, which passes `token_type_ids` and `next_sentence_label` through), `Trainer` and
`TrainingArguments` with their defaults except what the job sets (steps, batch, learning-rate plan, a
checkpoint at the last step), then `trainer.evaluate()`. The sentence pairs are lmtrain's, read from its
example cache (plain `.npy` files) with the original token put back at each position lmtrain masked, so
both sides train on the same pairs (the pairs `TextDatasetForNextSentencePrediction` used to build).

    python scripts/whole_run_transformers.py job.json

The job (JSON, written by the bench) names the tokenizer file, the example folder, the output folder and
the `BertConfig` / `TrainingArguments` values. The script prints ``phase NAME SECONDS_SINCE_EPOCH`` at the
end of each phase: start-up, data, assembly, training, save, evaluation.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def mark(phase: str, at: float | None = None) -> None:
    """Print the end of ``phase`` (now, or at ``at``) for the bench to read."""
    print(f"phase {phase} {time.time() if at is None else at:.3f}", flush=True)


class SentencePairs(torch.utils.data.Dataset):
    """One split of lmtrain's cached NSP examples, unmasked: what a tokenized sentence-pair dataset holds."""

    def __init__(self, folder: Path):
        meta = json.loads((folder / "meta.json").read_text())
        shards = [folder / shard["name"] for shard in meta.get("shards", [])] or [folder]

        def column(name: str) -> np.ndarray:
            return np.concatenate([np.load(shard / f"{name}.npy") for shard in shards])

        masked, labels = column("input_ids"), column("labels")
        self.input_ids = np.where(labels >= 0, labels, masked)  # labels hold the original token where masked
        self.token_type_ids = column("token_type_ids")
        self.lengths = column("length")
        self.next_sentence_label = column("next_sentence_label")

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> dict[str, list[int] | int]:
        n = int(self.lengths[i])
        return {
            "input_ids": self.input_ids[i, :n].tolist(),
            "token_type_ids": self.token_type_ids[i, :n].tolist(),
            "next_sentence_label": int(self.next_sentence_label[i]),
        }


def main() -> None:
    """Read the job, train, checkpoint and evaluate, marking each phase's end."""
    job = json.loads(Path(sys.argv[1]).read_text())
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    from transformers import (
        BertConfig,
        BertForPreTraining,
        DataCollatorForLanguageModeling,
        PreTrainedTokenizerFast,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    mark("start-up")
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=job["tokenizer"], **job["special_tokens"])
    examples = Path(job["examples"])
    train, held_out = SentencePairs(examples / "train"), SentencePairs(examples / "eval")
    mark("data")

    class StepTimes(TrainerCallback):
        """When training begins (after the Trainer's set-up) and when the last step ends (before its checkpoint)."""

        began = ended = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.began = time.time()

        def on_step_end(self, args, state, control, **kwargs):
            self.ended = time.time()

    set_seed(job["training"].get("seed", 42))
    model = BertForPreTraining(BertConfig(**job["model"]))
    times = StepTimes()
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=job["output_dir"], **job["training"]),
        data_collator=DataCollatorForLanguageModeling(tokenizer, **job["masking"]),
        train_dataset=train,
        eval_dataset=held_out,
        processing_class=tokenizer,
        callbacks=[times],
    )
    trainer.train()
    mark("assembly", times.began)
    mark("training", times.ended)
    mark("save")
    print(trainer.evaluate(), flush=True)
    mark("evaluation")


if __name__ == "__main__":
    main()
