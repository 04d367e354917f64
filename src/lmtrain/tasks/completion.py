"""Prompt -> completion fine-tuning of a causal LM: loss on completion tokens, greedy samples of held-out prompts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmtrain.config.data import GenerationDataConfig
from lmtrain.config.tasks import GenerationPredictConfig, GenerationTaskConfig
from lmtrain.data.baselines import unigram_perplexity
from lmtrain.errors import UserError
from lmtrain.files.checkpoints import BEST, is_checkpoint
from lmtrain.objectives.completion import CompletionLM
from lmtrain.tasks.base import Task, TaskDataset, by_length
from lmtrain.tasks.files import file_format, read_jsonl

log = logging.getLogger(__name__)


@dataclass
class Pair:
    """A prompt and the completion the model should learn to write after it."""

    prompt: str
    completion: str


def encode_pair(
    prompt: list[int], completion: list[int], start: list[int], end: list[int], max_len: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``start + prompt + completion + end`` ids and a loss mask that is 1 on completion and end tokens.

    Too long: the prompt loses tokens from its left first, then the completion from its right.
    Returns:
        (ids, loss_mask, was_cut).
    """
    room = max_len - len(start) - len(end)
    cut = len(prompt) + len(completion) > room
    if cut:
        keep_prompt = max(0, room - len(completion))
        prompt = prompt[len(prompt) - keep_prompt :] if keep_prompt else []
        completion = completion[: room - len(prompt)]
    ids = start + prompt + completion + end
    mask = [0] * (len(start) + len(prompt)) + [1] * (len(completion) + len(end))
    return np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=np.int64), cut


class CompletionTask(Task):
    """Fine-tune the ``lm`` head and backbone of a GPT on prompt -> completion JSON lines."""

    name, head, causal = "generation", None, True
    predict_example = "The fire spread across"
    config_class, data_config, predict_config = GenerationTaskConfig, GenerationDataConfig, GenerationPredictConfig
    cfg: GenerationDataConfig  # a task is built with its own data_config (the finetune config types `data` with it)

    def _read(self, path, key: str) -> list[Pair]:
        if file_format(path, self.cfg.format, "jsonl") != "jsonl":
            raise UserError(
                f"{key}: task=generation reads JSON lines with '{self.cfg.prompt_field}' and "
                f"'{self.cfg.completion_field}' fields (data.format=jsonl)."
            )
        fields = (self.cfg.prompt_field, self.cfg.completion_field)
        pairs = [Pair(str(row[fields[0]]), str(row[fields[1]])) for _, row in read_jsonl(path, fields, key)]
        if not pairs:
            raise UserError(f"{key}: {path} holds no prompt / completion pairs.")
        return pairs

    def _read_split(self, split, key: str) -> list[Pair]:
        prompts, _ = split.named_values(self.cfg.prompt_field, "data.prompt_field")
        completions, _ = split.named_values(self.cfg.completion_field, "data.completion_field")
        if not prompts:
            raise UserError(f"{key}: {split.where} holds no prompt / completion pairs.")
        return [Pair(str(p), str(c)) for p, c in zip(prompts, completions)]

    def texts(self) -> list[str]:
        """Prompts followed by their completions."""
        return [p.prompt + p.completion for p in self.train]

    @staticmethod
    def frame(tokenizer) -> tuple[list[int], list[int]]:
        """Start ids (the end-of-text token GPT-2 saw before every document) and end ids."""
        start = [tokenizer.ids["bos"]] if "bos" in tokenizer.ids else []
        end = [tokenizer.ids["eos"]] if "eos" in tokenizer.ids else []
        return start, end

    def _encode(self, pairs: list[Pair], tokenizer, max_len: int) -> list[dict[str, Any]]:
        start, end = self.frame(tokenizer)
        prompts = tokenizer.encode_batch([p.prompt for p in pairs])
        completions = tokenizer.encode_batch([p.completion for p in pairs])
        examples, cut = [], 0
        for prompt, completion in zip(prompts, completions):
            ids, mask, was_cut = encode_pair(prompt, completion, start, end, max_len)
            cut += was_cut
            examples.append({"input_ids": ids, "loss_mask": mask})
        if cut:
            log.warning(
                "%d of %d pairs were longer than data.max_seq_len=%d tokens: prompts were cut from the "
                "left, then completions from the right",
                cut,
                len(pairs),
                max_len,
            )
        return examples

    def example_inputs(self) -> Any:
        """The prompts and completions of the train and held-out pairs (what :meth:`datasets` encodes)."""
        return [[[p.prompt, p.completion] for p in pairs] for pairs in (self.train, self.eval)]

    def datasets(self, tokenizer, max_seq_len: int) -> tuple[TaskDataset, TaskDataset]:
        """Encoded train / held-out pairs with their completion loss masks."""
        return (
            TaskDataset(self._encode(self.train, tokenizer, max_seq_len)),
            TaskDataset(by_length(self._encode(self.eval, tokenizer, max_seq_len))),
        )

    def objective(self, weights: Any) -> CompletionLM:
        """Causal LM loss on completion tokens (class weights do not apply)."""
        if weights not in (None, "none"):
            raise UserError("finetune.class_weights applies to ner and classification, not to task=generation.")
        return CompletionLM()

    def baselines(self, tokenizer) -> dict[str, float]:
        """Perplexity of the held-out completions under a unigram model of the training completions."""
        train = [np.asarray(ids, dtype=np.int64) for ids in tokenizer.encode_batch([p.completion for p in self.train])]
        held = [np.asarray(ids, dtype=np.int64) for ids in tokenizer.encode_batch([p.completion for p in self.eval])]
        train, held = [t for t in train if len(t)], [h for h in held if len(h)]
        if not train or not held:
            return {}
        return {"baseline/unigram_ppl": unigram_perplexity(train, held, tokenizer.vocab_size)}

    def final_report(self, trainer, tokenizer, options: Any) -> dict[str, Any]:
        """Greedy completions of ``task.samples`` held-out prompts by the best checkpoint, and their exact-match
        share."""
        if options.samples <= 0:
            return {}
        best = trainer.run.checkpoints / BEST
        if is_checkpoint(best):
            trainer.load_weights(best.resolve())
        with trainer.gathered():
            samples = self.samples(trainer.model, tokenizer, options.samples, options.max_new_tokens)
        for sample in samples:
            log.info("prompt %r -> %r (reference %r)", sample["prompt"], sample["generated"], sample["reference"])
        exact = sum(s["generated"].strip() == s["reference"].strip() for s in samples) / max(len(samples), 1)
        return {"samples/exact_match": exact, "samples": samples}

    def samples(self, model, tokenizer, n: int, max_new_tokens: int) -> list[dict[str, str]]:
        """Greedy completions of the first ``n`` held-out prompts, with their references."""
        pairs = self.eval[:n]
        if not pairs:
            return []
        completions = self._greedy(model, tokenizer, [p.prompt for p in pairs], max_new_tokens)
        return [{"prompt": p.prompt, "reference": p.completion, "generated": c} for p, c in zip(pairs, completions)]

    def _greedy(self, model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
        from lmtrain.generation import Sampling, generate

        start, _ = self.frame(tokenizer)
        ids = [start + p for p in tokenizer.encode_batch(prompts)]
        model.eval()
        new = generate(
            model,
            ids,
            max_new_tokens,
            Sampling(greedy=True),
            eos_id=tokenizer.ids.get("eos"),
            pad_id=tokenizer.ids.get("pad", 0),
        )
        return [tokenizer.decode(tokens) for tokens in new]

    def predict(
        self, model, tokenizer, lines: list[str], batch_size: int, device: torch.device, **options: Any
    ) -> list[dict[str, Any]]:
        """Greedy completion of each line (decoded with a key/value cache)."""
        max_new = int(options.get("max_new_tokens", 40))
        out = []
        for i in range(0, len(lines), batch_size):
            chunk = lines[i : i + batch_size]
            completions = self._greedy(model, tokenizer, chunk, max_new)
            out += [{"prompt": p, "completion": c} for p, c in zip(chunk, completions)]
        return out

    @staticmethod
    def format(record: dict[str, Any]) -> str:
        """The completion, on one line."""
        return " ".join(record["completion"].split())
