"""scripts/equal_time.py: the fixed held-out masks both sides are scored on, first sub-word labels, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lmtrain.data.masking import IGNORE_INDEX, MaskingSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from equal_time import main  # noqa: E402
from equal_time_mlm import fixed_masks, padded_batches  # noqa: E402

SPEC = MaskingSpec(mask_id=4, vocab_size=100, special_ids=(0, 1, 2, 3, 4))


def _sequences(count: int, seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.concatenate([[2], rng.integers(5, 100, size=int(rng.integers(20, 60))), [3]]) for _ in range(count)]


def test_held_out_masks_are_the_same_on_every_call_and_for_every_subset():
    sequences = _sequences(30)
    first, second = fixed_masks(sequences, SPEC, seed=0, draws=3), fixed_masks(sequences, SPEC, seed=0, draws=3)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, second))
    # a sequence's mask depends on its index and the seed alone, not on the sequences scored with it
    fewer = fixed_masks(sequences[:10], SPEC, seed=0, draws=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(fewer, first[:10]))
    other_seed = fixed_masks(sequences, SPEC, seed=1, draws=1)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(other_seed, first[:30]))
    other_draw = first[30:60]
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(other_draw, first[:30]))


def test_held_out_masks_select_15_percent_of_ordinary_tokens_with_80_10_10():
    sequences = _sequences(400)
    masked = fixed_masks(sequences, SPEC, seed=0)
    selected = replaced_by_mask = kept = candidates = 0
    for original, (ids, labels) in zip(sequences, masked):
        chosen = labels != IGNORE_INDEX
        assert np.array_equal(labels[chosen], original[chosen])  # labels are the original tokens
        assert not chosen[0] and not chosen[-1]  # [CLS] and [SEP] are never selected
        selected += chosen.sum()
        candidates += len(original) - 2
        replaced_by_mask += (ids[chosen] == SPEC.mask_id).sum()
        kept += (ids[chosen] == original[chosen]).sum()
    assert selected / candidates == pytest.approx(0.15, abs=0.01)
    assert replaced_by_mask / selected == pytest.approx(0.8, abs=0.03)
    assert kept / selected == pytest.approx(0.1 + 0.1 / 95, abs=0.03)  # a random replacement can hit the original


def test_padded_batches_keep_every_masked_token_once_and_pad_with_ignored_labels():
    masked = fixed_masks(_sequences(10), SPEC, seed=0)
    batches = padded_batches(masked, batch_size=4, pad_id=0)
    assert [len(b["input_ids"]) for b in batches] == [4, 4, 2]
    assert sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in batches) == sum(
        int((labels != IGNORE_INDEX).sum()) for _, labels in masked
    )
    first = batches[0]
    padding = first["attention_mask"] == 0
    assert padding.any() and (first["labels"][padding] == IGNORE_INDEX).all()
    assert (first["input_ids"][padding] == 0).all()


def test_first_subword_labels_sit_on_each_words_first_token():
    from equal_time_ner import first_subword_examples
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from lmtrain.tasks.conll import TaggedSentence

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "john", "##son", "visited", "paris"])}
    core = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]")
    sentence = TaggedSentence(["johnson", "visited", "paris"], ["B-PER", "O", "B-LOC"])
    (example,) = first_subword_examples(tokenizer, [sentence], {"O": 0, "B-PER": 1, "B-LOC": 2}, max_len=16)
    assert example["input_ids"] == [4, 5, 6, 7]
    assert example["labels"] == [1, -100, 0, 2]


def test_bad_input_is_a_one_paragraph_error_with_exit_2(capsys, tmp_path):
    assert main(["--only", "ner"]) == 2
    assert "needs --conll-dir" in capsys.readouterr().out
    assert main(["--only", "ner", "--conll-dir", str(tmp_path)]) == 2
    assert "eng.train" in capsys.readouterr().out
    assert main(["--only", "mlm", "--budget", "soon"]) == 2
    assert "--budget=soon is not a positive duration" in capsys.readouterr().out


def test_random_ner_batches_turn_off_the_recipes_bucketing_on_the_lmtrain_side():
    from equal_time_ner import ner_overrides
    from equal_time_runs import composed_config

    paths = (Path("/m"), Path("/train"), Path("/dev"))
    assert composed_config("finetune", ner_overrides(*paths)).trainer.bucket_by_length is True
    assert composed_config("finetune", ner_overrides(*paths, "random")).trainer.bucket_by_length is False


def test_short_sentence_folder_keeps_the_short_sentences_of_both_files_line_for_line(tmp_path):
    from equal_time_ner import short_conll_dir

    from lmtrain.errors import UserError
    from lmtrain.tasks.conll import read_conll

    source = tmp_path / "conll"
    source.mkdir()
    text = (
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP I-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP I-MISC\ncall NN I-NP O\n\n"
        "Peter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\n\n"
        "BRUSSELS NNP B-NP I-LOC\n"
    )
    for name in ("eng.train", "eng.testa"):
        (source / name).write_text(text, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    short = short_conll_dir(source, 2, work)
    for name in ("eng.train", "eng.testa"):
        kept = read_conll(short / name)
        assert [(s.words, s.tags) for s in kept] == [
            (["Peter", "Blackburn"], ["I-PER", "I-PER"]),
            (["BRUSSELS"], ["I-LOC"]),
        ]
        assert "Peter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\n" in (short / name).read_text(encoding="utf-8")
    with pytest.raises(UserError, match="already exists: pass a new --work-dir"):
        short_conll_dir(source, 2, work)
