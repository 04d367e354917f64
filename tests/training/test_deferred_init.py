"""Models built on the meta device (FSDP): each rank's shards of the weights a normal build draws, a tensor at a
time."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec
from lmtrain.training.deferred_init import _PENDING, ShardLayout, _Recorder, build_deferred, is_deferred, replay

BERT = TransformerSpec(vocab_size=61, n_layers=2, d_model=16, n_heads=2, d_ff=32, max_positions=24)
GPT = dataclasses.replace(
    BERT, causal=True, norm="pre", position="sinusoidal", segment_vocab_size=0, embedding_norm=False, final_norm=True
)
CLASSIFIER = {"classifier": {"kind": "pooled_classifier", "n_classes": 3, "dropout": 0.1}}
TAGGER = {"tagger": {"kind": "token_classifier", "n_classes": 4, "dropout": 0.1, "crf": True}}


def _tensors(model: torch.nn.Module) -> dict[str, tuple[torch.Tensor, bool]]:
    """Every parameter (sharded: True) and buffer by name, tied ones under each name."""
    return {
        **{n: (t, True) for n, t in model.named_parameters(remove_duplicate=False)},
        **{n: (t, False) for n, t in model.named_buffers(remove_duplicate=False)},
    }


@pytest.mark.parametrize(
    "build",
    [
        lambda: LanguageModel(BERT, ["mlm", "nsp"]),
        lambda: LanguageModel(GPT, ["lm"], CLASSIFIER),
    ],
    ids=["bert", "gpt-sinusoidal"],
)
@pytest.mark.parametrize(
    "layout",
    [ShardLayout(), ShardLayout(2, 1), ShardLayout(3, 2), ShardLayout(64, 40)],
    ids=["whole", "2-ranks", "3-ranks", "more-ranks-than-rows"],
)
def test_each_rank_gets_its_shard_of_the_weights_a_normal_build_draws(build, layout):
    torch.manual_seed(7)
    normal = build()
    after_normal = torch.get_rng_state()
    torch.manual_seed(7)
    deferred = build_deferred(build, layout)
    assert torch.equal(torch.get_rng_state(), after_normal)  # what follows the build draws the same numbers
    assert all(p.is_meta for p in deferred.parameters()) and is_deferred(deferred)
    values = _PENDING[deferred]
    expected = _tensors(normal)
    assert sorted(values) == sorted(expected)
    for name, (tensor, sharded) in expected.items():
        want = layout.local(tensor.detach()) if sharded else tensor
        assert values[name].shape == want.shape and torch.equal(values[name], want), name


def test_a_fine_tuning_build_replays_the_loaded_backbone_and_the_constrained_crf():
    pretrained = LanguageModel(BERT, ["mlm"])
    state = {k: v for k, v in pretrained.state_dict().items() if k.startswith("backbone.")}

    def build():
        model = LanguageModel(BERT, [], TAGGER)
        model.load_state_dict(state, strict=False)
        model.heads["tagger"].crf.constrain(torch.tensor([[True, False, True, True]] * 4))
        return model

    torch.manual_seed(3)
    normal = build()
    torch.manual_seed(3)
    values = _PENDING[build_deferred(build, ShardLayout(2, 0))]
    for name, (tensor, sharded) in _tensors(normal).items():
        want = ShardLayout(2, 0).local(tensor.detach()) if sharded else tensor
        assert torch.equal(values[name], want), name
    assert torch.equal(
        values["backbone.blocks.0.ff.up.weight"],
        ShardLayout(2, 0).local(pretrained.backbone.blocks[0].ff.up.weight.detach()),
    )


def test_the_replay_holds_about_one_tensor_at_a_time_not_the_model():
    spec = dataclasses.replace(GPT, vocab_size=64, n_layers=8, d_model=32, d_ff=128)
    recorder = _Recorder()
    with torch.device("meta"), recorder:
        model = LanguageModel(spec, ["lm"])
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    largest = max(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    peak = replay(recorder.ops, {})
    assert peak <= 2 * largest < model_bytes / 4, (peak, largest, model_bytes)


def test_a_build_that_cannot_run_on_the_meta_device_is_built_in_full_with_a_warning(caplog):
    def build():
        model = torch.nn.Linear(3, 2)
        if model.weight.sum() > 100:  # reads a value: impossible on the meta device
            raise AssertionError
        return model

    torch.manual_seed(1)
    normal = build()
    torch.manual_seed(1)
    built = build_deferred(build, ShardLayout(2, 0))
    assert not is_deferred(built) and torch.equal(built.weight, normal.weight)
    assert "cannot be built on the meta device" in caplog.text


def test_a_build_that_reseeds_the_generator_is_built_in_full(caplog):
    def build():
        torch.manual_seed(5)  # not an operation the recorder sees: replaying would draw other numbers
        return torch.nn.Linear(3, 2)

    torch.manual_seed(1)
    normal = build()
    torch.manual_seed(1)
    built = build_deferred(build, ShardLayout())
    assert not is_deferred(built) and torch.equal(built.weight, normal.weight)
    assert "seeds or draws from the CPU generator" in caplog.text
