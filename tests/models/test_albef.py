"""ALBEF's model: cross-attention, momentum (EMA) encoders, first-in-first-out feature queues, checkpoints."""

import torch

from lmtrain.files.checkpoints import load_weights
from lmtrain.models.albef import AlbefModel, AlbefSpec
from lmtrain.training import checkpoint as ckpt
from tests.albef_fixtures import tiny_model


def _text(model, B=2, T=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, model.spec.text.vocab_size, (B, T), generator=g)
    return ids, torch.ones(B, T, dtype=torch.bool)


def test_changing_the_image_changes_fused_states_but_not_text_encoder_states():
    model = tiny_model().eval()
    ids, mask = _text(model)
    a, b = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    text = model.encode_text(ids, mask)
    before = text.clone()
    fused_a = model.fuse(text, mask, model.encode_image(a))
    fused_b = model.fuse(text, mask, model.encode_image(b))
    assert torch.equal(text, before)  # fusing with either image leaves the text encoder's states as they were
    assert (fused_a - fused_b).abs().max() > 1e-3  # the fusion encoder does


def test_text_layers_have_no_cross_attention_and_fusion_layers_do():
    model = tiny_model()
    blocks = model.text.blocks
    assert not hasattr(blocks[0], "cross") and hasattr(blocks[1], "cross")
    assert blocks[1].cross.kv.in_features == model.spec.vision.d_model


def test_momentum_update_is_an_exponential_moving_average():
    model = tiny_model(momentum=0.9)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    before = {n: p.clone() for n, p in model.momentum.named_parameters()}
    online = dict(model._online())
    model.momentum_update()
    for name, p_m in model.momentum.named_parameters():
        module, rest = name.split(".", 1)
        theta = online[module].get_parameter(rest)
        assert torch.allclose(p_m, 0.9 * before[name] + 0.1 * theta, atol=1e-6), name
    assert int(model.steps_done) == 1


def test_momentum_parameters_are_not_trainable_and_the_mlm_head_stays_tied():
    model = tiny_model()
    assert all(not p.requires_grad for p in model.momentum.parameters())
    assert model.momentum["mlm"].weight is model.momentum["text"].embeddings.token.weight
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert not trainable & {id(p) for p in model.momentum.parameters()}


def test_queue_is_first_in_first_out():
    model = tiny_model(queue_size=6)
    feats = [torch.nn.functional.normalize(torch.randn(2, 16), dim=1) for _ in range(4)]
    for step, f in enumerate(feats):
        model.enqueue(f, -f, torch.tensor([10 * step, 10 * step + 1]))
    # 4 batches of 2 into 6 slots: the 4th batch overwrote the 1st (the oldest)
    assert torch.allclose(model.image_queue[:, 0:2], feats[3].T)
    assert torch.allclose(model.image_queue[:, 2:4], feats[1].T)
    assert torch.allclose(model.text_queue[:, 4:6], -feats[2].T)
    assert model.idx_queue.tolist() == [[30, 31, 10, 11, 20, 21]]
    assert int(model.queue_ptr) == 2


def test_checkpoint_round_trip_keeps_momentum_weights_and_queues(tmp_path):
    model = tiny_model(queue_size=4)
    model.enqueue(torch.ones(2, 16) / 4, torch.ones(2, 16) / 4, torch.tensor([3, 4]))
    model.momentum_update()
    path = ckpt.save_checkpoint(tmp_path, 1, model, {"family": "albef"}, None, None)
    clone = AlbefModel(AlbefSpec.from_dict(model.spec.to_dict()))
    load_weights(clone, path)
    for (name, a), b in zip(model.state_dict().items(), clone.state_dict().values()):
        assert torch.equal(a, b), name
    assert int(clone.queue_ptr) == 2 and int(clone.steps_done) == 1
