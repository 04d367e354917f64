"""Hugging Face interop: read and write ``save_pretrained`` folders of BERT, RoBERTa and GPT-2.

The config mapping is :mod:`lmtrain.models.hf_config_map`'s, the weight names
:mod:`lmtrain.models.hf_weight_names`'. It needs json, torch and safetensors; ``transformers`` is
never imported.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from lmtrain.errors import UserError
from lmtrain.files.atomic import follow_umask
from lmtrain.models.hf_config_checks import check_config_fits_weights, check_config_values, read_hf_config
from lmtrain.models.hf_config_map import hf_config_from_spec, hf_family, spec_from_hf_config
from lmtrain.models.hf_weight_files import read_checked_weights
from lmtrain.models.hf_weight_names import (
    convert_from_hf,
    hf_head_names,
    lmtrain_to_hf,
    normalise_hf_names,
    weights_mismatch_error,
)
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.skip_init import weights_left_as_allocated


def load_hf_folder(folder: str | Path) -> LanguageModel:
    """Build a :class:`LanguageModel` from a Hugging Face ``save_pretrained`` folder.

    Args:
        folder: holds config.json and model.safetensors (or shards with an index, or pytorch_model.bin).
    Returns:
        The model in eval mode, with the heads whose weights the folder has.
    Raises:
        UserError: a missing file, an unsupported model, or weights that do not fill every parameter.
    """
    folder = Path(folder).expanduser()
    config_path, config = folder / "config.json", read_hf_config(folder)
    family = hf_family(config.get("model_type"), str(config_path))
    check_config_values(config, family, str(config_path))
    try:
        spec, _ = spec_from_hf_config(config, source=str(config_path))
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(
            f"{config_path} lacks or mistypes a setting its model needs ({type(error).__name__}: "
            f"{error}); it is not a complete Hugging Face config.json. Write the folder again with "
            "save_pretrained."
        ) from None
    model_type = config["model_type"]

    def check(shapes: dict[str, tuple[int, ...]], weights: str) -> None:
        check_config_fits_weights(config, family, normalise_hf_names(shapes, family), str(config_path), weights)

    weights = read_checked_weights(folder, check)
    heads = hf_head_names(weights, model_type, spec.tie_embeddings)
    if family == "roberta" and "mlm" in heads and spec.activation != "gelu":
        raise UserError(
            f"{config_path}: hidden_act={config.get('hidden_act')!r} differs from the 'gelu' "
            "that RoBERTa's MLM head always uses; lmtrain's MLM head cannot express that."
        )
    try:
        converted, missing, unexpected = convert_from_hf(weights, spec, family, heads)
        if missing or unexpected:  # said before building a model of the config's size
            raise weights_mismatch_error(str(folder), model_type, missing, unexpected)
        with weights_left_as_allocated():  # every weight is loaded below, or the load is refused
            model = LanguageModel(spec, heads)
        result = model.load_state_dict(converted, strict=False)
    except RuntimeError as error:  # a tensor of another shape than the config's (one layer differing, say)
        reason = " ".join(str(error).split())[:300]
        raise UserError(
            f"{folder}: the weights do not fit a {model_type} model as described by its config "
            f"({reason}). Check that config.json and the weights belong to the same model."
        ) from None
    if result.missing_keys or result.unexpected_keys:
        raise weights_mismatch_error(str(folder), model_type, list(result.missing_keys), list(result.unexpected_keys))
    return model.eval()


def export_hf_folder(
    model: LanguageModel,
    model_type: str,
    out_dir: str | Path,
    tokenizer_json: str | Path | None = None,
    token_ids: Mapping[str, int] | None = None,
) -> Path:
    """Write ``model`` as a Hugging Face folder that ``AutoModelFor*.from_pretrained`` loads.

    Args:
        model: the lmtrain model; its heads choose the architecture (see :func:`hf_config_from_spec`).
        model_type: bert, roberta, xlm-roberta or gpt2.
        out_dir: folder to create or overwrite files in.
        tokenizer_json: a tokenizer.json to copy alongside, or None.
        token_ids: optional role -> id (``bos``, ``eos``) for config.json.
    Returns:
        ``out_dir`` as a Path, holding config.json, model.safetensors (and tokenizer.json).
    Raises:
        UserError: the model has no equivalent Hugging Face architecture, or tokenizer_json is missing.
    """
    config = hf_config_from_spec(model.spec, model_type, model.head_names, token_ids)
    tensors = lmtrain_to_hf(model.state_dict(), model.spec, model_type)
    return write_hf_folder(out_dir, config, tensors, tokenizer_json)


def write_hf_folder(
    out_dir: str | Path, config: dict, tensors: dict[str, torch.Tensor], tokenizer_json: str | Path | None
) -> Path:
    """Write ``config.json``, ``model.safetensors`` (and a copy of ``tokenizer_json``) into ``out_dir``.

    Raises:
        UserError: ``tokenizer_json`` is given but missing.
    """
    out_dir = Path(out_dir).expanduser()
    if tokenizer_json is not None and not Path(tokenizer_json).is_file():
        raise UserError(f"tokenizer file {tokenizer_json} does not exist; pass the run's tokenizer.json or none.")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer_json is not None:
        shutil.copyfile(tokenizer_json, out_dir / "tokenizer.json")
    follow_umask(out_dir / "model.safetensors")  # safetensors writes 0600: teammates could not load it
    return out_dir
