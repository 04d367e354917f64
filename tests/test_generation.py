"""Decoding with a key/value cache, sampling controls, streaming text, and mask filling."""

from __future__ import annotations

import logging

import pytest
import torch

from lmtrain.config import TokenizerConfig
from lmtrain.data.tokenizer import train_tokenizer
from lmtrain.errors import UserError
from lmtrain.generation import (
    Sampling,
    TextStream,
    encode_for_mask,
    fill_mask,
    filter_logits,
    generate,
    generate_stream,
    with_mask_token,
)
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec

BPE_ROLES = {"pad": "<pad>", "unk": "<unk>", "cls": "<s>", "sep": "</s>", "mask": "<mask>", "bos": "<s>", "eos": "</s>"}
TEXT = [
    "The fire spread across the hills near the town.",
    "A farmer repaired the old barn after the storm.",
    "The police found a red car in the garden on Sunday.",
    "Smoke 🔥 rose over the valley café.",
] * 5


def causal_model(init_std: float = 0.5, max_positions: int = 64, vocab_size: int = 50) -> LanguageModel:
    """A tiny GPT-2-style model; a large init spreads the logits so greedy choices are clear-cut."""
    torch.manual_seed(0)
    spec = TransformerSpec(
        vocab_size=vocab_size,
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_ff=64,
        max_positions=max_positions,
        causal=True,
        norm="pre",
        segment_vocab_size=0,
        activation="gelu_tanh",
        embedding_norm=False,
        final_norm=True,
        layer_norm_eps=1e-5,
        init_std=init_std,
    )
    return LanguageModel(spec, ["lm"]).eval()


def masked_model(vocab_size: int) -> LanguageModel:
    torch.manual_seed(0)
    spec = TransformerSpec(vocab_size=vocab_size, n_layers=2, d_model=32, n_heads=4, d_ff=64, max_positions=64)
    return LanguageModel(spec, ["mlm"]).eval()


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer(
        TEXT, TokenizerConfig(kind="bpe", vocab_size=400, min_frequency=1, lowercase=False, special_tokens=BPE_ROLES)
    )


@pytest.fixture(scope="module")
def wordpiece():
    return train_tokenizer(TEXT, TokenizerConfig(kind="wordpiece", vocab_size=300, min_frequency=1))


PROMPTS = [[3, 7, 1, 9, 4, 4, 12, 30], [5, 2], [11, 40, 8, 19, 2]]


@torch.no_grad()
def reference_greedy(model: LanguageModel, prompt: list[int], steps: int) -> list[int]:
    """Greedy decoding the plain way: the whole sequence through the model every step."""
    ids = list(prompt)
    for _ in range(steps):
        logits = model.heads["lm"](model.backbone(torch.tensor([ids]))[0, -1])
        ids.append(int(logits.argmax()))
    return ids[len(prompt) :]


def test_cache_gives_the_same_tokens_as_recomputing():
    model = causal_model()
    cached = generate(model, [PROMPTS[0]], 20, Sampling(greedy=True))
    uncached = generate(model, [PROMPTS[0]], 20, Sampling(greedy=True), use_cache=False)
    assert cached == uncached == [reference_greedy(model, PROMPTS[0], 20)]


def test_left_padded_batch_matches_one_prompt_at_a_time():
    model = causal_model()
    alone = [reference_greedy(model, p, 12) for p in PROMPTS]
    assert generate(model, PROMPTS, 12, Sampling(greedy=True)) == alone
    assert generate(model, PROMPTS, 12, Sampling(greedy=True), use_cache=False) == alone


def test_same_seed_same_sample_different_seed_different_sample():
    model = causal_model(init_std=0.02)  # nearly uniform: samples vary a lot with the seed
    first = generate(model, PROMPTS, 15, seed=1)
    assert generate(model, PROMPTS, 15, seed=1) == first
    assert generate(model, PROMPTS, 15, seed=2) != first


def test_top_k_one_and_tiny_top_p_are_greedy():
    model = causal_model()
    greedy = generate(model, PROMPTS, 10, Sampling(greedy=True))
    assert generate(model, PROMPTS, 10, Sampling(temperature=0)) == greedy
    assert generate(model, PROMPTS, 10, Sampling(top_k=1), seed=3) == greedy
    assert generate(model, PROMPTS, 10, Sampling(top_p=1e-6), seed=3) == greedy
    assert generate(model, PROMPTS, 10, Sampling(top_p=1e-300), seed=3) == greedy  # 0 in float32: still one token


def test_filter_logits_keeps_top_k_and_the_smallest_nucleus():
    logits = torch.tensor([[0.05, 0.5, 0.15, 0.3]]).log()
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[False, True, False, True]]
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [[False, True, False, True]]
    assert torch.isfinite(filter_logits(logits, top_p=0.85)).tolist() == [[False, True, True, True]]
    assert torch.isfinite(filter_logits(logits, top_k=3, top_p=0.5)).tolist() == [[False, True, False, False]]


def test_stops_at_end_of_text_per_row():
    model = causal_model()
    free = generate(model, PROMPTS, 12, Sampling(greedy=True))
    eos = free[0][3]
    stopped = generate(model, PROMPTS, 12, Sampling(greedy=True), eos_id=eos)
    for row, tokens in enumerate(free):
        expected = tokens[: tokens.index(eos)] if eos in tokens else tokens
        assert stopped[row] == expected
    steps = list(generate_stream(model, PROMPTS, 12, Sampling(greedy=True), eos_id=eos))
    first_stop = free[0].index(eos)
    assert steps[first_stop][0] == eos and all(step[0] is None for step in steps[first_stop + 1 :])


def test_stream_callback_sees_every_token_in_order():
    model = causal_model()
    seen: list[tuple[int, int]] = []
    out = generate(model, PROMPTS, 6, Sampling(greedy=True), on_token=lambda row, tok: seen.append((row, tok)))
    for row, tokens in enumerate(out):
        assert [t for r, t in seen if r == row] == tokens
    assert seen[:3] == [(0, out[0][0]), (1, out[1][0]), (2, out[2][0])]  # step by step, not row by row


def test_positions_run_out_warns_and_stops(caplog):
    model = causal_model(max_positions=16)
    with caplog.at_level(logging.WARNING, logger="lmtrain.generation"):
        out = generate(model, [list(range(1, 11))], 20, Sampling(greedy=True))
    assert len(out[0]) == 6 and "16 positions" in caplog.text
    with pytest.raises(UserError, match="shorten the prompt"):
        generate(model, [list(range(1, 17))], 5)


def test_bad_sampling_settings_and_models_are_refused():
    with pytest.raises(UserError, match="temperature"):
        Sampling(temperature=-1)
    with pytest.raises(UserError, match="top_p"):
        Sampling(top_p=0)
    for temperature in (1e-300, float("inf"), float("nan"), 1e6):
        with pytest.raises(UserError, match=rf"temperature={temperature}: must be 0 \(greedy\) or in \[0.01, 100\]"):
            Sampling(temperature=temperature)
    with pytest.raises(UserError, match="non-empty prompt"):
        generate(causal_model(), [[]], 3)
    with pytest.raises(UserError, match="causal model"):
        generate(masked_model(50), [[1, 2]], 3)


def test_text_stream_waits_for_whole_characters(bpe):
    ids = bpe.encode_batch(["Smoke 🔥 rose over the valley café."])[0]
    stream = TextStream(bpe, ids[:1])
    pieces = [stream.push(i) for i in ids[1:]]
    assert "".join(pieces) == stream.text == bpe.decode(ids)[len(bpe.decode(ids[:1])) :]
    assert all("\ufffd" not in piece for piece in pieces) and stream.flush() == ""
    cut = TextStream(bpe)
    fire = bpe.encode_batch(["🔥"])[0]
    assert len(fire) > 1 and cut.push(fire[0]) == "" and cut.flush() == "\ufffd"  # an unfinished character


def test_fill_mask_ranks_candidates_per_mask(wordpiece):
    model = masked_model(wordpiece.vocab_size)
    predictions = fill_mask(model, wordpiece, "The [MASK] spread across the <mask> near the town.", top_k=4)
    assert len(predictions) == 2
    for candidates in predictions:
        probs = [c.prob for c in candidates]
        assert len(candidates) == 4 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
        assert not {c.token_id for c in candidates} & set(wordpiece.special_ids)
    with pytest.raises(UserError, match="no mask token"):
        fill_mask(model, wordpiece, "The fire spread.")


def test_fill_mask_accepts_either_spelling_and_drops_the_space_before_a_bpe_mask(bpe):
    assert with_mask_token("a [MASK] b <mask>", "<mask>") == "a <mask> b <mask>"
    mask = bpe.id("mask")
    ids = encode_for_mask(bpe, with_mask_token("The [MASK] spread.", "<mask>"), mask)
    assert ids.count(mask) == 1 and bpe.decode([ids[ids.index(mask) - 1]]).strip()
    predictions = fill_mask(masked_model(bpe.vocab_size), bpe, "The [MASK] spread.", top_k=3)
    assert len(predictions) == 1 and len(predictions[0]) == 3
