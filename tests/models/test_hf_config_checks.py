"""A Hugging Face folder under hostile edits: its config.json against sane values and its weights' shapes,
its weight files (a shard index, pytorch_model.bin) against their promised form; each refused in one
paragraph before any model is built."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lmtrain.errors import UserError
from lmtrain.models import hf_interop, hf_weight_files
from lmtrain.models.hf_interop import export_hf_folder, load_hf_folder
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec
from tests.conftest import run_cli

BERT = TransformerSpec(vocab_size=50, n_layers=2, d_model=16, n_heads=2, d_ff=32, max_positions=32)
GPT2 = TransformerSpec(
    vocab_size=50,
    n_layers=2,
    d_model=16,
    n_heads=2,
    d_ff=32,
    max_positions=32,
    causal=True,
    norm="pre",
    segment_vocab_size=0,
    embedding_norm=False,
    final_norm=True,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """Tiny BERT (mlm + nsp) and GPT-2 (lm) folders as ``lmtrain export`` writes them."""
    root = tmp_path_factory.mktemp("exported")
    torch.manual_seed(0)
    return {
        "bert": export_hf_folder(LanguageModel(BERT, ["mlm", "nsp"]), "bert", root / "bert"),
        "gpt2": export_hf_folder(LanguageModel(GPT2, ["lm"]), "gpt2", root / "gpt2"),
    }


def edited(exported, kind: str, folder: Path, **values) -> Path:
    """A copy of the exported ``kind`` (bert, gpt2) folder whose config.json has ``values`` set."""
    shutil.copytree(exported[kind], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **values}))
    return folder


def _edited_keys(value) -> str:
    """A test id: the keys a case edits, its model type, else nothing (the message is too long for an id)."""
    return "-".join(value) if isinstance(value, dict) else value if value in ("bert", "gpt2") else ""


@pytest.fixture
def nothing_built(monkeypatch):
    """Fail the test if a model is built or a tensor read: a refusal must come from headers alone."""

    def fail(*args, **kwargs):
        raise AssertionError("built a model or read tensors before checking the config against the weights")

    monkeypatch.setattr(hf_interop, "LanguageModel", fail)
    monkeypatch.setattr(hf_weight_files, "read_safetensors", fail)


@pytest.mark.parametrize(
    "model_type,values,said",
    [
        (
            "bert",
            {"num_hidden_layers": 1_000_000},
            "num_hidden_layers=1000000, but the weights hold 2 layers (encoder.layer.0 to encoder.layer.1)",
        ),
        (
            "bert",
            {"vocab_size": 1_000_000_000},
            "vocab_size=1000000000, but the weights' embeddings.word_embeddings.weight has shape [50, 16]",
        ),
        (
            "bert",
            {"hidden_size": 10_000_000, "num_attention_heads": 2},
            "hidden_size=10000000, but the weights' embeddings.word_embeddings.weight has shape [50, 16]",
        ),
        (
            "bert",
            {"max_position_embeddings": 1 << 40},
            "max_position_embeddings=1099511627776, but the weights' embeddings.position_embeddings.weight has shape",
        ),
        (
            "bert",
            {"type_vocab_size": 100_000_000},
            "type_vocab_size=100000000, but the weights' embeddings.token_type_embeddings.weight has shape [2, 16]",
        ),
        (
            "bert",
            {"intermediate_size": 100_000_000},
            "intermediate_size=100000000, but the weights' encoder.layer.0.intermediate.dense.weight has shape "
            "[32, 16]",
        ),
        ("gpt2", {"n_layer": 1_000_000}, "n_layer=1000000, but the weights hold 2 layers (h.0 to h.1)"),
        (
            "gpt2",
            {"n_inner": None, "n_embd": 16},
            "n_inner (unset, so 64), but the weights' h.0.mlp.c_fc.weight has shape [16, 32]",
        ),
        (
            "gpt2",
            {"vocab_size": 1_000_000_000},
            "vocab_size=1000000000, but the weights' wte.weight has shape [50, 16]",
        ),
    ],
    ids=_edited_keys,
)
def test_a_config_that_contradicts_its_weights_is_refused_before_building(
    exported, tmp_path, nothing_built, model_type, values, said
):
    folder = edited(exported, model_type, tmp_path / "hf", **values)
    with pytest.raises(UserError) as error:
        load_hf_folder(folder)
    message = " ".join(str(error.value).split())
    assert f"{folder / 'config.json'} does not describe its weights (model.safetensors): {said}" in message
    assert "belong to the same model" in message


@pytest.mark.parametrize(
    "values,said",
    [
        ({"vocab_size": 1e9}, "vocab_size=1000000000.0 (expected a whole number of at least 1)"),
        ({"hidden_size": "16"}, 'hidden_size="16" (expected a whole number of at least 1)'),
        ({"intermediate_size": -32}, "intermediate_size=-32 (expected a whole number of at least 1)"),
        ({"num_attention_heads": True}, "num_attention_heads=true (expected a whole number of at least 1)"),
        ({"num_hidden_layers": None}, "missing num_hidden_layers"),
        ({"type_vocab_size": 0}, "type_vocab_size=0 (expected a whole number of at least 1)"),
        ({"pad_token_id": -1}, "pad_token_id=-1 (expected a token id: a whole number of at least 0)"),
        ({"hidden_dropout_prob": 2}, "hidden_dropout_prob=2 (expected a probability between 0 and 1)"),
        ({"layer_norm_eps": "1e-12"}, 'layer_norm_eps="1e-12" (expected a number above 0)'),
        ({"tie_word_embeddings": "yes"}, 'tie_word_embeddings="yes" (expected true or false)'),
        ({"hidden_act": ["gelu"]}, 'hidden_act=["gelu"] (expected a string)'),
        ({"num_attention_heads": 3}, "num_attention_heads=3 does not divide hidden_size=16"),
    ],
    ids=_edited_keys,
)
def test_a_mistyped_or_negative_config_value_is_named(exported, tmp_path, nothing_built, values, said):
    folder = edited(exported, "bert", tmp_path / "hf", **values)
    with pytest.raises(UserError) as error:
        load_hf_folder(folder)
    message = " ".join(str(error.value).split())
    assert f"{folder / 'config.json'} lacks or mistypes a setting its model needs: {said}" in message


def test_a_gpt2_config_with_a_negative_eos_as_padding_is_named(exported, tmp_path, nothing_built):
    folder = edited(exported, "gpt2", tmp_path / "hf", pad_token_id=None, eos_token_id=-5)
    with pytest.raises(UserError, match=r"eos_token_id=-5 \(expected a token id"):
        load_hf_folder(folder)


def test_a_model_type_that_is_not_a_string_is_named(exported, tmp_path):
    folder = edited(exported, "bert", tmp_path / "hf", model_type=["bert"])
    with pytest.raises(UserError, match=r"model_type \['bert'\] is not supported"):
        load_hf_folder(folder)


def test_one_layer_of_another_width_is_a_named_error(exported, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = edited(exported, "bert", tmp_path / "hf")
    weights = load_file(str(folder / "model.safetensors"))
    weights["bert.encoder.layer.1.intermediate.dense.weight"] = torch.zeros(40, 16)
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(
        UserError,
        match=r"the weights do not fit a bert model as described by its config \(.*"
        r"blocks\.1\.ff\.up\.weight",
    ):
        load_hf_folder(folder)


def test_the_cli_refuses_a_million_layers_at_once_and_writes_nothing(exported, tmp_path):
    folder = edited(exported, "bert", tmp_path / "hf", num_hidden_layers=1_000_000)
    out = run_cli(
        "generate",
        f"ckpt={folder}",
        "prompt='The [MASK] sold the barn.'",
        f"hydra.run.dir={tmp_path / 'gen'}",
        cwd=tmp_path,
        timeout=120,
    )
    message = " ".join(out.stderr.split())
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert (
        f"{folder / 'config.json'} does not describe its weights (model.safetensors): num_hidden_layers=1000000, "
        "but the weights hold 2 layers" in message
    )
    assert not (tmp_path / "gen" / "generations.jsonl").exists()


# ------------------------------------------------------------------------------- weight files in hostile forms
def _sharded(exported, folder: Path, weight_map) -> Path:
    """The exported BERT with its weights as one shard and ``weight_map`` as the index's map."""
    shutil.copytree(exported["bert"], folder, dirs_exist_ok=True)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def test_a_sharded_index_in_the_form_save_pretrained_writes_loads(exported, tmp_path):
    from safetensors import safe_open

    with safe_open(str(exported["bert"] / "model.safetensors"), framework="pt") as file:
        names = list(file.keys())
    folder = _sharded(exported, tmp_path / "hf", {name: "model-00001-of-00001.safetensors" for name in names})
    assert load_hf_folder(folder).spec == BERT


@pytest.mark.parametrize("shard", ["absolute", "../outside.safetensors", "sub/../../outside.safetensors"])
def test_a_shard_outside_the_model_folder_is_refused(exported, tmp_path, shard):
    shutil.copy(exported["bert"] / "model.safetensors", tmp_path / "outside.safetensors")
    (tmp_path / "hf" / "sub").mkdir(parents=True)
    name = str(tmp_path / "outside.safetensors") if shard == "absolute" else shard
    folder = _sharded(exported, tmp_path / "hf", {"bert.embeddings.word_embeddings.weight": name})
    with pytest.raises(UserError) as error:
        load_hf_folder(folder)
    message = " ".join(str(error.value).split())
    assert (
        f"{folder / 'model.safetensors.index.json'} names the shard {name!r}, which is not a file of {folder}"
        in message
        and "lmtrain reads no file elsewhere" in message
    )


@pytest.mark.parametrize(
    "content,found",
    [
        ([1, 2], "found a JSON list"),
        ({"weight_map": ["model-00001-of-00001.safetensors"]}, "found a weight_map of list"),
        (
            {"weight_map": {"bert.embeddings.word_embeddings.weight": 5}},
            "found a weight_map that is empty or not all strings",
        ),
        ({"weight_map": {}}, "found a weight_map that is empty or not all strings"),
    ],
)
def test_a_malformed_shard_index_is_named(exported, tmp_path, content, found):
    folder = _sharded(exported, tmp_path / "hf", {})
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps(content))
    with pytest.raises(UserError) as error:
        load_hf_folder(folder)
    message = " ".join(str(error.value).split())
    assert f"{index} is not a shard index: expected a JSON object whose weight_map maps each tensor name" in message
    assert found in message


@pytest.mark.parametrize(
    "content,found",
    [
        ([torch.ones(2)], "but it holds a list"),
        ({"bert": {"embeddings": torch.ones(2)}}, "but 'bert' holds a dict"),
        ({3: torch.ones(2)}, "but 3 holds a Tensor"),
        (torch.ones(2), "but it holds a Tensor"),
    ],
)
def test_a_pytorch_model_bin_that_is_not_a_flat_tensor_dict_is_named(exported, tmp_path, content, found):
    folder = edited(exported, "bert", tmp_path / "hf")
    (folder / "model.safetensors").unlink()
    torch.save(content, folder / "pytorch_model.bin")
    with pytest.raises(UserError) as error:
        load_hf_folder(folder)
    message = " ".join(str(error.value).split())
    assert f"{folder / 'pytorch_model.bin'} is not a state dict: expected a flat dict of tensor names" in message
    assert found in message


def test_a_pytorch_model_bin_is_checked_against_the_config_too(exported, tmp_path):
    from safetensors.torch import load_file

    folder = edited(exported, "bert", tmp_path / "hf", num_hidden_layers=1_000_000)
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match=r"does not describe its weights \(pytorch_model.bin\): num_hidden_layers="):
        load_hf_folder(folder)


def test_a_layer_numbered_far_beyond_the_others_is_refused(exported, tmp_path, nothing_built):
    from safetensors.torch import load_file, save_file

    folder = edited(exported, "bert", tmp_path / "hf", num_hidden_layers=100_000_001)
    weights = load_file(str(folder / "model.safetensors"))
    weights["bert.encoder.layer.100000000.output.dense.bias"] = torch.zeros(16)
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(
        UserError,
        match=r"the weights' layers are not numbered 0 to 2: they hold "
        r"encoder.layer.100000000",
    ):
        load_hf_folder(folder)


def test_a_huge_number_or_long_string_is_shown_short(exported, tmp_path, nothing_built):
    folder = edited(exported, "bert", tmp_path / "hf", hidden_size="x" * 10_000, initializer_range=10**400)
    with pytest.raises(UserError) as error:
        load_hf_folder(folder)
    message = str(error.value)
    assert 'hidden_size="xxxxxxxx' in message and "xxx... (expected a whole number of at least 1)" in message
    assert "initializer_range" not in message and len(message) < 600  # a huge but whole number is a number
    folder = edited(exported, "bert", tmp_path / "hf2", vocab_size=10**400)
    with pytest.raises(
        UserError,
        match=r"vocab_size=10{59}\.\.\., but the weights' embeddings.word_embeddings.weight "
        r"has shape \[50, 16\]",
    ):
        load_hf_folder(folder)
