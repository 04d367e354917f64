"""The whole composed config of a command checked before any work starts.

:func:`check_config` builds every schema of a composed config (as ``OmegaConf.to_object`` does, but
keeping track of where each node sits and leaving unset ``???`` values to the command that reads
them), adds the checks that span several groups (through the plugs the config names), and turns the
first failure into one :class:`~lmtrain.errors.UserError` naming the full key.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lmtrain.config_checks import ConfigRangeError, range_error


def _build(node: Any, prefix: str) -> Any:
    """The dataclass (or plain value) of config ``node``, every schema's ``__post_init__`` run.

    Missing (``???``) values and interpolations that do not resolve are left out, so the field's
    default stands in for the check; the command reports them when it reads them, as before.
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, DictConfig):
        return node
    object_type = OmegaConf.get_type(node)
    if object_type is None or not dataclasses.is_dataclass(object_type):
        return OmegaConf.to_container(node, resolve=True)
    init_names = {f.name for f in dataclasses.fields(object_type) if f.init}
    values = {}
    for key in node.keys():
        if key not in init_names or OmegaConf.is_missing(node, key):
            continue
        try:
            child = node[key]
        except Exception:  # an interpolation that does not resolve: the command reports it where used
            continue
        values[key] = _build(child, f"{prefix}{key}.")
    try:
        return object_type(**values)
    except ConfigRangeError as error:
        error.field = prefix + error.field
        raise


def _cross_checks(cfg: Any, command: str) -> None:
    """Checks that span several groups (each raises ConfigRangeError with its full key)."""
    model, data, tok = cfg.get("model"), cfg.get("data"), cfg.get("tokenizer")
    if command == "pretrain" and data is not None and model is not None:
        _check_objective(cfg)
    training_from_scratch = command == "pretrain" or (command == "finetune" and cfg.get("init") == "scratch")
    if training_from_scratch and model is not None and data is not None and "max_positions" in model:
        if data.max_seq_len > model.max_positions:
            raise ConfigRangeError("data.max_seq_len", f"<= model.max_positions={model.max_positions}",
                                   data.max_seq_len, "lower the first or raise the second")
    if training_from_scratch and tok is not None and not tok.get("path"):
        specials = len(set(tok.special_tokens.values()))
        if tok.vocab_size <= specials:
            raise ConfigRangeError("tokenizer.vocab_size", f"> {specials}", tok.vocab_size,
                                   f"the tokenizer's {specials} special tokens take that many ids")


def _check_objective(cfg: Any) -> None:
    """The pretraining objective's own demands: a model family it trains, sequences long enough for a target."""
    from omegaconf import OmegaConf

    from lmtrain.models.families import ModelFamily  # torch: imported only when a pretrain config is checked
    from lmtrain.objectives.plug import PretrainingObjective
    from lmtrain.plugs import plug_class

    objective = plug_class(cfg.objective, "objective", PretrainingObjective)(OmegaConf.to_object(cfg.objective))
    least, reason = objective.min_seq_len()
    if cfg.data.max_seq_len < least:
        raise ConfigRangeError("data.max_seq_len", f">= {least} for objective={objective.name}", cfg.data.max_seq_len,
                               reason)
    objective.check(plug_class(cfg.model, "model", ModelFamily).name, cfg.data.max_seq_len)


def check_config(cfg: Any, command: str) -> None:
    """Check every value of ``cfg`` (``lmtrain <command>``'s composed config) against its allowed range.

    Raises:
        UserError: naming the full key, the value and the allowed range, e.g.
            ``trainer.batch_size=0: must be >= 1``.
    """
    try:
        _build(cfg, "")
        _cross_checks(cfg, command)
    except ConfigRangeError as error:
        raise range_error(error, command) from None
