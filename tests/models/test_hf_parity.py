"""Parity of lmtrain's backbone and heads with Hugging Face BERT, RoBERTa and GPT-2.

Tiny random models are built in the test (no download). HF's fresh initialisation has unit
LayerNorms and zero biases, so every parameter is perturbed first: a wrongly mapped bias or
norm then shows up in the outputs.
"""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from lmtrain.errors import UserError  # noqa: E402
from lmtrain.models.hf_config_map import spec_from_hf_config  # noqa: E402
from lmtrain.models.hf_interop import export_hf_folder, load_hf_folder  # noqa: E402
from lmtrain.models.hf_weight_names import hf_to_lmtrain, lmtrain_to_hf  # noqa: E402
from lmtrain.models.language_model import LanguageModel  # noqa: E402
from lmtrain.models.spec import TransformerSpec  # noqa: E402

ATOL = 1e-5
ENCODER = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


def bert_config():
    return transformers.BertConfig(**ENCODER, max_position_embeddings=64)


def roberta_config():
    return transformers.RobertaConfig(
        **ENCODER,
        max_position_embeddings=66,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        layer_norm_eps=1e-5,
    )


def gpt2_config():
    return transformers.GPT2Config(
        vocab_size=99,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_inner=37,
        n_positions=64,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=98,
        eos_token_id=98,
    )


def perturbed(model):
    """``model`` in eval mode with every parameter moved off its initial value."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def batch(pad_id: int, low: int = 3):
    """Ids (2, 10) with the second row right-padded by 3, and its attention mask."""
    torch.manual_seed(2)
    ids = torch.randint(low, 99, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    ids[mask == 0] = pad_id
    return ids, mask


def converted(hf_model, model_type: str, heads: list[str]) -> LanguageModel:
    """An lmtrain model holding ``hf_model``'s weights (strict load)."""
    spec, _ = spec_from_hf_config(hf_model.config.to_dict())
    ours = LanguageModel(spec, heads).eval()
    ours.load_state_dict(hf_to_lmtrain(hf_model.state_dict(), spec, model_type))
    return ours


@torch.no_grad()
def test_bert_pretraining_parity():
    torch.manual_seed(0)
    hf = perturbed(transformers.BertForPreTraining(bert_config()))
    ours = converted(hf, "bert", ["mlm", "nsp"])
    ids, mask = batch(pad_id=0)
    token_types = torch.zeros_like(ids)
    token_types[:, 5:] = 1
    expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=token_types)
    hidden = ours.backbone(ids, attention_mask=mask, token_type_ids=token_types)
    real = mask.bool()
    torch.testing.assert_close(ours.heads["mlm"](hidden)[real], expected.prediction_logits[real], atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.heads["nsp"](hidden), expected.seq_relationship_logits, atol=ATOL, rtol=0)


@torch.no_grad()
def test_roberta_masked_lm_parity():
    torch.manual_seed(0)
    hf = perturbed(transformers.RobertaForMaskedLM(roberta_config()))
    ours = converted(hf, "roberta", ["mlm"])
    assert ours.spec.position_offset == 2 and ours.spec.segment_vocab_size == 0
    ids, mask = batch(pad_id=1)
    expected = hf(input_ids=ids, attention_mask=mask).logits
    logits = ours.heads["mlm"](ours.backbone(ids, attention_mask=mask))
    real = mask.bool()
    torch.testing.assert_close(logits[real], expected[real], atol=ATOL, rtol=0)


@torch.no_grad()
def test_gpt2_lm_parity():
    torch.manual_seed(0)
    hf = perturbed(transformers.GPT2LMHeadModel(gpt2_config()))
    ours = converted(hf, "gpt2", ["lm"])
    ids, _ = batch(pad_id=0)
    expected = hf(input_ids=ids).logits
    torch.testing.assert_close(ours.heads["lm"](ours.backbone(ids)), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["bert", "bert_bin", "roberta", "gpt2"])
@torch.no_grad()
def test_load_hf_folder_matches_hidden_states(tmp_path, kind):
    torch.manual_seed(0)
    if kind.startswith("bert"):  # BertModel saves bare names (no "bert." prefix) and a pooler
        hf, base, pad, heads = perturbed(transformers.BertModel(bert_config())), None, 0, []
    elif kind == "roberta":
        hf, base, pad, heads = perturbed(transformers.RobertaForMaskedLM(roberta_config())), "roberta", 1, ["mlm"]
    else:
        hf, base, pad, heads = perturbed(transformers.GPT2LMHeadModel(gpt2_config())), "transformer", 0, ["lm"]
    hf.save_pretrained(tmp_path)
    if kind == "bert_bin":
        (tmp_path / "model.safetensors").unlink()
        torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    ours = load_hf_folder(tmp_path)
    assert ours.head_names == heads and not ours.training
    ids, mask = batch(pad_id=pad)
    if kind == "gpt2":
        mask = torch.ones_like(ids)
    module = getattr(hf, base) if base else hf
    expected = module(input_ids=ids, attention_mask=mask).last_hidden_state  # GPT-2: after ln_f
    real = mask.bool()
    torch.testing.assert_close(ours.backbone(ids, attention_mask=mask)[real], expected[real], atol=ATOL, rtol=0)


def random_lmtrain(model_type: str, tie: bool = True) -> tuple[LanguageModel, list[str]]:
    """A perturbed lmtrain model of a preset that has a Hugging Face equivalent."""
    sizes = dict(
        vocab_size=99,
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_ff=37,
        max_positions=64,
        dropout=0.0,
        attention_dropout=0.0,
        tie_embeddings=tie,
    )
    if model_type == "bert":
        spec, heads = TransformerSpec(**sizes), ["mlm", "nsp"]
    elif model_type == "roberta":
        spec = TransformerSpec(**sizes, segment_vocab_size=0, position_offset=2, pad_token_id=1, layer_norm_eps=1e-5)
        heads = ["mlm"]
    else:
        spec = TransformerSpec(
            **sizes,
            causal=True,
            norm="pre",
            segment_vocab_size=0,
            activation="gelu_tanh",
            layer_norm_eps=1e-5,
            embedding_norm=False,
            final_norm=True,
        )
        heads = ["lm"]
    torch.manual_seed(0)
    return perturbed(LanguageModel(spec, heads)), heads


@pytest.mark.parametrize(
    "model_type,tie", [("bert", True), ("bert", False), ("roberta", True), ("gpt2", True), ("gpt2", False)]
)
@torch.no_grad()
def test_export_round_trip(tmp_path, model_type, tie):
    ours, heads = random_lmtrain(model_type, tie)
    tokenizer = tmp_path / "tok.json"
    tokenizer.write_text("{}")
    out = export_hf_folder(ours, model_type, tmp_path / "hf", tokenizer_json=tokenizer)
    assert (out / "tokenizer.json").is_file()
    auto = {
        "bert": transformers.AutoModelForPreTraining,
        "roberta": transformers.AutoModelForMaskedLM,
        "gpt2": transformers.AutoModelForCausalLM,
    }[model_type]
    hf, info = auto.from_pretrained(out, output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    hf.eval()
    pad = ours.spec.pad_token_id
    ids, mask = batch(pad_id=pad)
    real = mask.bool()
    if model_type == "gpt2":
        torch.testing.assert_close(ours.heads["lm"](ours.backbone(ids)), hf(input_ids=ids).logits, atol=ATOL, rtol=0)
        return
    token_types = torch.zeros_like(ids)
    if model_type == "bert":
        token_types[:, 5:] = 1
    expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=token_types)
    hidden = ours.backbone(ids, attention_mask=mask, token_type_ids=token_types)
    logits = expected.prediction_logits if model_type == "bert" else expected.logits
    torch.testing.assert_close(ours.heads["mlm"](hidden)[real], logits[real], atol=ATOL, rtol=0)
    if model_type == "bert":
        torch.testing.assert_close(ours.heads["nsp"](hidden), expected.seq_relationship_logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("model_type", ["bert", "roberta", "gpt2"])
def test_export_then_load_is_identity(tmp_path, model_type):
    ours, heads = random_lmtrain(model_type)
    loaded = load_hf_folder(export_hf_folder(ours, model_type, tmp_path))
    assert loaded.head_names == heads and loaded.spec == ours.spec
    for name, tensor in ours.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, atol=0, rtol=0)


def test_lmtrain_to_hf_writes_no_shared_tensors():
    ours, _ = random_lmtrain("bert")
    tensors = lmtrain_to_hf(ours.state_dict(), ours.spec, "bert")
    assert "cls.predictions.decoder.weight" not in tensors  # tied: HF re-ties it to the embedding
    assert len({t.data_ptr() for t in tensors.values()}) == len(tensors)


def test_folder_without_config_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as error:
        load_hf_folder(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "has no config.json" in message and "save_pretrained" in message


def test_folder_without_weights_is_a_user_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(bert_config().to_dict()))
    with pytest.raises(UserError, match="has no model.safetensors"):
        load_hf_folder(tmp_path)


def test_unsupported_model_type_is_a_user_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5", "d_model": 32}))
    with pytest.raises(UserError) as error:
        load_hf_folder(tmp_path)
    message = str(error.value)
    assert "config.json" in message and "'t5' is not supported" in message
    assert "bert, roberta, xlm-roberta, gpt2" in message


def test_mismatched_weights_name_the_keys(tmp_path):
    hf = transformers.BertModel(bert_config())
    hf.save_pretrained(tmp_path)
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tmp_path / "model.safetensors"))
    del weights["encoder.layer.1.attention.self.query.weight"]
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError, match=r"missing encoder\.layer\.1\.attention\.self\.query\.weight"):
        load_hf_folder(tmp_path)
