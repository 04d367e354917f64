"""ELMo's biLM: direction leak tests, char CNN invariances, padding, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from lmtrain.models.char_cnn import BOW, CHAR_PAD, EOW, CharCNNEncoder, char_table, spell
from lmtrain.models.elmo import ElmoSpec, build_elmo, reverse_within_length

VOCAB = [f"w{i}" for i in range(40)] + ["héllo", "a-very-long-token-indeed-longer-than-max"]


def _model(encoder: str = "char_cnn") -> torch.nn.Module:
    torch.manual_seed(0)
    spec = ElmoSpec(
        vocab_size=len(VOCAB),
        d_model=16,
        n_layers=2,
        lstm_dim=24,
        token_encoder=encoder,
        max_chars=12,
        char_dim=8,
        char_filter_widths=[1, 2, 3],
        char_filter_counts=[8, 8, 16],
        highway_layers=1,
        dropout=0.0,
    )
    return build_elmo(spec, VOCAB).eval()


def test_spell_frames_bytes_and_cuts_long_tokens():
    row = spell("ab", 6)
    assert row == [BOW, ord("a") + 1, ord("b") + 1, EOW, CHAR_PAD, CHAR_PAD]
    long = spell("x" * 50, 8)
    assert len(long) == 8 and long[0] == BOW and long[-1] == EOW
    assert len(spell("é", 6)) == 6  # two UTF-8 bytes


def test_reverse_within_length_keeps_padding_in_place_and_is_an_involution():
    x = torch.arange(10).view(2, 5, 1).float()
    lengths = torch.tensor([3, 5])
    rev = reverse_within_length(x, lengths)
    assert rev[0, :, 0].tolist() == [2, 1, 0, 3, 4]
    assert rev[1, :, 0].tolist() == [9, 8, 7, 6, 5]
    assert torch.equal(reverse_within_length(rev, lengths), x)


@pytest.mark.parametrize("encoder", ["char_cnn", "embedding"])
def test_forward_lm_never_sees_the_right_and_backward_lm_never_the_left(encoder):
    model = _model(encoder)
    ids = torch.randint(0, len(VOCAB), (1, 9))
    t = 4
    changed = ids.clone()
    changed[0, t] = (ids[0, t] + 1) % len(VOCAB)
    with torch.no_grad():
        a, b = model.backbone(ids), model.backbone(changed)
    for layer in range(2):
        fwd_diff = (a.forward[layer] - b.forward[layer]).abs().amax(-1)[0]  # (T,)
        bwd_diff = (a.backward[layer] - b.backward[layer]).abs().amax(-1)[0]
        # float noise only (the char CNN batches the distinct ids), never a real dependence
        assert torch.all(fwd_diff[:t] < 1e-6) and torch.all(fwd_diff[t:] > 1e-4)
        assert torch.all(bwd_diff[t + 1 :] < 1e-6) and torch.all(bwd_diff[: t + 1] > 1e-4)


def test_char_cnn_gives_a_token_the_same_vector_wherever_it_appears():
    torch.manual_seed(0)
    encoder = CharCNNEncoder(len(VOCAB), 12, 8, [1, 2, 3], [8, 8, 16], 1, 16, char_table(VOCAB, 12)).eval()
    ids = torch.tensor([[5, 7, 5, 40], [41, 5, 2, 7]])
    with torch.no_grad():
        out = encoder(ids)
        alone = encoder(torch.tensor([[5]]))[0, 0]
    for b, t in ((0, 0), (0, 2), (1, 1)):
        torch.testing.assert_close(out[b, t], alone)
    torch.testing.assert_close(out[0, 1], out[1, 3])
    assert not torch.allclose(out[0, 0], out[0, 1])  # different spellings, different vectors


def test_padding_changes_nothing_for_real_tokens():
    model = _model()
    ids = torch.randint(1, len(VOCAB), (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 6, dtype=torch.bool), torch.zeros(1, 4, dtype=torch.bool)], dim=1)
    other = torch.randint(1, len(VOCAB), (1, 10))  # a full-length neighbour in the same batch
    with torch.no_grad():
        alone = model.backbone(ids)
        batch = model.backbone(torch.cat([padded, other]), torch.cat([mask, torch.ones_like(mask)]))
    for layer in range(2):
        torch.testing.assert_close(batch.forward[layer][0, :6], alone.forward[layer][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batch.backward[layer][0, :6], alone.backward[layer][0], atol=1e-5, rtol=1e-5)


def test_checkpoint_round_trip_rebuilds_the_char_table(tmp_path):
    from lmtrain.files.checkpoints import load_weights, read_model_meta
    from lmtrain.models.elmo import ElmoLanguageModel
    from lmtrain.training import checkpoint as ckpt

    model = _model()
    path = ckpt.save_checkpoint(
        tmp_path, 1, model, {"family": "elmo", "spec": model.spec.to_dict(), "heads": ["lm"]}, None, None
    )
    meta = read_model_meta(path)
    rebuilt = ElmoLanguageModel(ElmoSpec.from_dict(meta["spec"]), meta["heads"]).eval()
    load_weights(rebuilt, path)
    assert torch.equal(rebuilt.backbone.encoder.chars, model.backbone.encoder.chars)
    ids = torch.randint(0, len(VOCAB), (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.backbone(ids).forward[-1], model.backbone(ids).forward[-1])
