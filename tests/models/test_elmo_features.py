"""ELMo features: the scalar mix, a frozen biLM under a task head, padding that changes nothing."""

from __future__ import annotations

import pytest
import torch

from lmtrain.models.elmo import ElmoSpec, build_elmo
from lmtrain.models.elmo_features import ElmoTaskModel, bilm_state, build_elmo_task_model
from lmtrain.models.scalar_mix import ScalarMix

SPEC = ElmoSpec(
    vocab_size=40,
    d_model=8,
    n_layers=2,
    lstm_dim=12,
    token_encoder="char_cnn",
    max_chars=8,
    char_dim=4,
    char_filter_widths=[1, 2],
    char_filter_counts=[4, 4],
    highway_layers=1,
    dropout=0.3,
)
TAGGER = {"tagger": {"kind": "token_classifier", "n_classes": 3, "dropout": 0.0}}


def _pretrained() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_elmo(SPEC, [f"w{i}" for i in range(SPEC.vocab_size)]).state_dict()


def test_scalar_mix_is_a_softmax_weighted_sum_times_gamma():
    mix = ScalarMix(3, initial_weights=[0.0, 1.0, 2.0])
    with torch.no_grad():
        mix.gamma.fill_(2.0)
    layers = [torch.full((2, 4), float(v)) for v in (1.0, 2.0, 3.0)]
    s = torch.tensor([0.0, 1.0, 2.0]).softmax(0)
    expected = 2.0 * (s[0] * 1 + s[1] * 2 + s[2] * 3)
    assert torch.allclose(mix(layers), torch.full((2, 4), expected.item()))
    assert torch.allclose(ScalarMix(3)(layers), torch.full((2, 4), 2.0))  # zeros: an equal mix
    with pytest.raises(ValueError, match="2 layers given to a mix of 3"):
        mix(layers[:2])


def test_features_join_both_directions_of_every_layer_and_ignore_padding():
    model = build_elmo_task_model(SPEC, TAGGER, _pretrained()).eval()
    ids = torch.tensor([[3, 7, 9, 4, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    layers = model.backbone.layers(ids, mask)
    assert len(layers) == SPEC.n_layers + 1 and all(h.shape == (1, 6, 2 * SPEC.d_model) for h in layers)
    assert torch.equal(layers[0][..., : SPEC.d_model], layers[0][..., SPEC.d_model :])  # token layer, both halves
    padded = model.backbone(ids, mask)
    alone = model.backbone(ids[:, :4], mask[:, :4])
    assert torch.allclose(padded[:, :4], alone, atol=1e-6)  # the backward LSTM never reads the padding


def test_pretrained_bilm_weights_are_loaded_into_the_features():
    pretrained = _pretrained()
    model = build_elmo_task_model(SPEC, TAGGER, pretrained)
    state = model.state_dict()
    for name, value in bilm_state(pretrained).items():
        assert torch.equal(state[name], value), name
    assert not any(k.startswith("heads.lm") for k in state)  # the LM softmax is not part of the features
    with pytest.raises(ValueError, match="lack"):
        build_elmo_task_model(SPEC, TAGGER, {k: v for k, v in pretrained.items() if "forward_lm" not in k})


def test_frozen_bilm_gets_no_gradient_and_no_dropout_while_the_mix_and_head_learn():
    model = build_elmo_task_model(SPEC, TAGGER, _pretrained())
    frozen = model.backbone.freeze_bilm()
    assert frozen == len(list(model.backbone.bilm.parameters()))
    model.train()
    assert not model.backbone.bilm.training and model.heads["tagger"].training
    ids = torch.randint(1, SPEC.vocab_size, (2, 5))
    first = model.backbone(ids)
    assert torch.equal(first, model.backbone(ids))  # no dropout inside a frozen biLM
    model.heads["tagger"](first).logsumexp(-1).sum().backward()
    assert all(p.grad is None for p in model.backbone.bilm.parameters())
    assert model.backbone.mix.weights.grad is not None and model.backbone.mix.weights.grad.abs().sum() > 0
    assert model.backbone.mix.gamma.grad is not None
    assert model.heads["tagger"].output.weight.grad is not None


def test_unfrozen_bilm_is_tuned_too():
    model = build_elmo_task_model(SPEC, TAGGER, _pretrained()).train()
    model.heads["tagger"](model.backbone(torch.randint(1, SPEC.vocab_size, (2, 5)))).sum().backward()
    grads = [p.grad for p in model.backbone.bilm.forward_lm.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_classifier_over_elmo_pools_the_real_tokens():
    heads = {"classifier": {"kind": "mean_pooled_classifier", "n_classes": 2, "dropout": 0.0}}
    model = ElmoTaskModel(SPEC, heads).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    mask = (ids != 0).long()
    logits = model.heads["classifier"](model.backbone(ids, mask), mask)
    alone = model.heads["classifier"](model.backbone(ids[:1, :3], mask[:1, :3]), mask[:1, :3])
    assert logits.shape == (2, 2) and torch.allclose(logits[:1], alone, atol=1e-6)


def test_a_bilstm_tagger_reads_token_vectors_with_the_mix_and_ignores_padding():
    bilstm = {
        "tagger": {
            "kind": "token_classifier",
            "n_classes": 3,
            "dropout": 0.0,
            "encoder": "bilstm",
            "lstm_dim": 6,
            "crf": True,
        }
    }
    model = build_elmo_task_model(SPEC, bilstm, _pretrained()).eval()
    ids = torch.tensor([[3, 7, 9, 4, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    features = model.backbone(ids, mask)
    assert features.shape == (1, 6, 3 * SPEC.d_model)
    assert torch.equal(features[..., : SPEC.d_model], model.backbone.layers(ids, mask)[0][..., : SPEC.d_model])
    scores = model.heads["tagger"](features, mask)
    alone = model.heads["tagger"](model.backbone(ids[:, :4], mask[:, :4]), mask[:, :4])
    assert torch.allclose(scores[:, :4], alone, atol=1e-6)  # the task biLSTM's backward pass skips the padding
