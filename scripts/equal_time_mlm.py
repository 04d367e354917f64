"""Masked-LM pretraining for an equal wall-clock budget: lmtrain's own run against a `transformers` loop.

Both sides train a BERT of one size on lmtrain's bundled default corpus with the same trained WordPiece
tokenizer and the same packed training sequences (lmtrain's data pipeline makes them once, cached),
MLM only (15% of tokens, 80/10/10), AdamW with the same settings, the same batch and the same schedule
shape planned for the budget. Both are then scored by one function on the same held-out sequences,
masked once with a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from equal_time_runs import (
    composed_config,
    forever,
    hf_parameter_groups,
    lmtrain_for_budget,
    load_average,
    side_row,
    train_for_budget,
)

from lmtrain.data.masking import IGNORE_INDEX, MaskingSpec, mask_tokens
from lmtrain.data.pretraining import PretrainingData, masking_spec, prepare_pretraining_data
from lmtrain.models.spec import SIZES
from lmtrain.objectives.plug import PretrainingObjective
from lmtrain.plugs import plug_class


def mlm_overrides(size: str) -> list[str]:
    """The lmtrain overrides of the comparison: BERT's architecture and WordPiece, MLM without NSP.

    BertForMaskedLM has no next-sentence head, so lmtrain trains `objective=mlm` (RoBERTa's dynamic
    masking of packed full sentences) on the BERT preset: the same objective on both sides.
    """
    return ["model=bert", "objective=mlm", f"model.size={size}"]


@dataclass
class MlmSetup:
    """The composed lmtrain config, its prepared corpus and the masking spec both sides use."""

    cfg: Any
    data: PretrainingData
    spec: MaskingSpec


def prepare_mlm(overrides: list[str]) -> MlmSetup:
    """Tokenizer and train / held-out sequences of lmtrain's default corpus, as `lmtrain pretrain` makes them."""
    cfg = composed_config("pretrain", overrides)
    objective = plug_class(cfg.objective, "objective", PretrainingObjective)(cfg.objective)
    data = prepare_pretraining_data(cfg.data, cfg.tokenizer, objective)
    return MlmSetup(cfg, data, masking_spec(cfg.objective, data.tokenizer))


def fixed_masks(
    sequences: list[np.ndarray], spec: MaskingSpec, seed: int, draws: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each held-out sequence corrupted ``draws`` times: (masked ids, labels), each mask drawn from ``seed``,
    the draw and the sequence's index alone, so the same sequences get the same masks in every run and
    for both models (more draws score more masked tokens of a small held-out set)."""
    pool = spec.random_candidates()
    return [
        mask_tokens(ids, spec, np.random.default_rng([seed, draw, i]), candidates_pool=pool)
        for draw in range(draws)
        for i, ids in enumerate(sequences)
    ]


def padded_batches(
    masked: list[tuple[np.ndarray, np.ndarray]], batch_size: int, pad_id: int
) -> list[dict[str, torch.Tensor]]:
    """The masked sequences as padded batches (input_ids, attention_mask, labels), in order."""
    batches = []
    for start in range(0, len(masked), batch_size):
        chunk = masked[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE_INDEX, dtype=torch.long)
        for row, (seq, lab) in enumerate(chunk):
            ids[row, : len(seq)] = torch.from_numpy(seq.astype(np.int64))
            labels[row, : len(lab)] = torch.from_numpy(lab.astype(np.int64))
        batches.append({"input_ids": ids, "attention_mask": (ids != pad_id).long(), "labels": labels})
    return batches


def held_out_batches(
    setup: MlmSetup, seed: int, draws: int, max_sequences: int | None = None, batch_size: int = 32
) -> list[dict[str, torch.Tensor]]:
    """The first ``max_sequences`` held-out sequences (all when None), each masked ``draws`` times from ``seed``."""
    store = setup.data.eval
    count = len(store) if max_sequences is None else min(max_sequences, len(store))
    sequences = [store[i]["input_ids"] for i in range(count)]
    return padded_batches(fixed_masks(sequences, setup.spec, seed, draws), batch_size, setup.data.tokenizer.id("pad"))


@torch.no_grad()
def score_masked_lm(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Masked-token accuracy and mean cross-entropy of a `transformers` masked LM on fixed masked batches."""
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    for batch in batches:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
        selected = batch["labels"] != IGNORE_INDEX
        targets, scores = batch["labels"][selected], logits[selected].float()  # (N,), (N, V)
        correct += int((scores.argmax(-1) == targets).sum())
        loss_sum += float(torch.nn.functional.cross_entropy(scores, targets, reduction="sum"))
        total += int(selected.sum())
    return {"accuracy": correct / max(total, 1), "loss": loss_sum / max(total, 1), "masked_tokens": total}


def hf_bert_for_masked_lm(setup: MlmSetup):
    """A `transformers` BertForMaskedLM of the lmtrain config's size, dropout and vocabulary (random weights)."""
    from transformers import BertConfig, BertForMaskedLM

    model_cfg, tokenizer = setup.cfg.model, setup.data.tokenizer
    n_layers, d_model, n_heads, d_ff = SIZES[model_cfg.size]
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        intermediate_size=d_ff,
        hidden_dropout_prob=model_cfg.dropout,
        attention_probs_dropout_prob=model_cfg.attention_dropout,
        max_position_embeddings=model_cfg.max_positions,
        type_vocab_size=model_cfg.segment_vocab_size,
        layer_norm_eps=model_cfg.layer_norm_eps,
        initializer_range=model_cfg.init_std,
        pad_token_id=tokenizer.id("pad"),
    )
    return BertForMaskedLM(config)


def hf_mlm_collator(setup: MlmSetup):
    """DataCollatorForLanguageModeling (15%, 80/10/10) over lmtrain's tokenizer file, wrapped for `transformers`."""
    from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast

    roles = setup.data.tokenizer.roles
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(setup.data.tokenizer_path),
        pad_token=roles["pad"],
        unk_token=roles["unk"],
        cls_token=roles["cls"],
        sep_token=roles["sep"],
        mask_token=roles["mask"],
    )
    objective = setup.cfg.objective
    return DataCollatorForLanguageModeling(
        tokenizer,
        mlm=True,
        mlm_probability=objective.mask_prob,
        mask_replace_prob=objective.mask_token_prob,
        random_replace_prob=objective.random_token_prob,
    )


def train_transformers_mlm(setup: MlmSetup, budget_s: float, max_steps: int):
    """BertForMaskedLM + DataCollatorForLanguageModeling + torch AdamW on lmtrain's training sequences.

    Returns:
        (the trained model, what its loop did).
    """
    cfg = setup.cfg
    torch.manual_seed(cfg.trainer.seed)
    model = hf_bert_for_masked_lm(setup)
    train = [{"input_ids": setup.data.train[i]["input_ids"].tolist()} for i in range(len(setup.data.train))]
    loader = torch.utils.data.DataLoader(
        train,
        batch_size=cfg.trainer.batch_size,
        shuffle=True,
        collate_fn=hf_mlm_collator(setup),
        generator=torch.Generator().manual_seed(cfg.trainer.seed),
    )
    optim = cfg.optim
    optimizer = torch.optim.AdamW(
        hf_parameter_groups(model, optim.weight_decay, optim.lr),
        lr=optim.lr,
        betas=tuple(optim.betas),
        eps=optim.eps,
        fused=True,
    )
    result = train_for_budget(model, optimizer, forever(loader), optim, max_steps, budget_s, cfg.trainer.grad_clip)
    return model, result


def compare_mlm(
    size: str, budget_s: float, max_steps: int, mask_seed: int, mask_draws: int, work: Path
) -> dict[str, Any]:
    """Both sides trained for ``budget_s`` seconds, one after the other, and scored on the same masks.

    Returns:
        A row per side (steps, tokens/s, held-out masked-token accuracy and loss) and the setup.
    """
    overrides = mlm_overrides(size)
    setup = prepare_mlm(overrides)
    batches = held_out_batches(setup, mask_seed, mask_draws)
    from transformers import BertForMaskedLM

    folder, summary, ours_loop = lmtrain_for_budget("pretrain", overrides, budget_s, max_steps, work, "mlm")
    ours_load, ours = load_average(), BertForMaskedLM.from_pretrained(folder)
    own_eval = {
        "lmtrain_own_eval_mlm_acc": summary["eval/mlm_acc"],  # its own held-out masks: a cross-check
        "load_after": ours_load,
    }
    ours_row = side_row(ours_loop, score_masked_lm(ours, batches), own_eval)
    theirs, theirs_loop = train_transformers_mlm(setup, budget_s, max_steps)
    theirs_row = side_row(theirs_loop, score_masked_lm(theirs, batches), {"load_after": load_average()})
    return {
        "lmtrain": ours_row,
        "transformers": theirs_row,
        "setup": {
            "command": "lmtrain pretrain " + " ".join(overrides),
            "size": size,
            "budget_s": budget_s,
            "held_out_sequences": len(setup.data.eval),
            "mask_draws": mask_draws,
            "mask_seed": mask_seed,
            "masked_tokens": ours_row["masked_tokens"],
            "parameters": summary.get("parameters"),
            "cpu_kernels": summary.get("cpu_kernels"),
            "majority_token_acc": summary.get("baseline/mlm_majority_acc"),
        },
    }
