"""The whole composed config of a command checked before any work starts.

:func:`check_config` builds every schema of a composed config (as ``OmegaConf.to_object`` does, but
keeping track of where each node sits and leaving unset ``???`` values to the command that reads
them), adds the checks that span several groups (through the plugs the config names), and turns the
first failure into one :class:`~lmtrain.errors.UserError` naming the full key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from lmtrain.config.checks import ConfigRangeError, IgnoredKeyError, range_error, unknown_key_error


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
    for key in node:
        if key not in init_names:  # only `+key=...` adds a key its schema lacks: nothing would read it
            raise unknown_key_error(object_type, prefix, str(key), OmegaConf.select(node, str(key), default="?"))
        if OmegaConf.is_missing(node, key):
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


def _given_data_keys(given: Iterable[str]) -> set[str]:
    """The ``data.<key>`` names among the override keys ``given`` (``data.train_files`` -> ``train_files``)."""
    return {key.lstrip("+~").split(".", 1)[1] for key in given if key.lstrip("+~").startswith("data.")}


def _check_data_keys(built: Any, given: set[str]) -> None:
    """Refuse a ``data`` key typed on the command line that the chosen data source does not read."""
    from lmtrain.config.data import check_source_keys

    data = getattr(built, "data", None)
    if dataclasses.is_dataclass(data) and hasattr(data, "active_source"):
        try:
            check_source_keys(data, given)
        except ConfigRangeError as error:
            error.field = f"data.{error.field}"
            raise


def _check_finetune_keys(cfg: Any, given: set[str]) -> None:
    """Refuse a ``finetune.*`` option that the chosen task does not read (its schema's ``UNREAD_FINETUNE``) when
    it has a value other than its default or was typed on the command line."""
    from omegaconf import OmegaConf

    from lmtrain.config.commands import FinetuneOptions

    task, options = cfg.get("task"), cfg.get("finetune")
    schema = OmegaConf.get_type(task) if task is not None else None
    unread = getattr(schema, "UNREAD_FINETUNE", {})
    defaults = FinetuneOptions()
    for key, why in unread.items():
        value = options.get(key) if options is not None else None
        if f"finetune.{key}" in given or value != getattr(defaults, key):
            raise IgnoredKeyError(
                f"finetune.{key}",
                value,
                f"is not read by task={task.get('name')}: {why}",
                "Drop the key.",
            )


def _cross_checks(cfg: Any, command: str, given: set[str]) -> None:
    """Checks that span several groups (each raises ConfigRangeError with its full key)."""
    model, data, tok = cfg.get("model"), cfg.get("data"), cfg.get("tokenizer")
    given_data = _given_data_keys(given)
    if command == "pretrain" and data is not None and model is not None:
        _check_objective(cfg, given_data)
    if command == "finetune":
        _check_finetune_keys(cfg, given)
    if command in ("finetune", "pretrain"):
        _check_init_packing(cfg)
    training_from_scratch = command == "pretrain" or (command == "finetune" and cfg.get("init") == "scratch")
    if (
        training_from_scratch
        and model is not None
        and data is not None
        and "max_positions" in model
        and data.max_seq_len > model.max_positions
    ):
        raise ConfigRangeError(
            "data.max_seq_len",
            f"<= model.max_positions={model.max_positions}",
            data.max_seq_len,
            "lower the first or raise the second",
        )
    if training_from_scratch and tok is not None and not tok.get("path"):
        specials = len(set(tok.special_tokens.values()))
        if tok.vocab_size <= specials:
            raise ConfigRangeError(
                "tokenizer.vocab_size",
                f"> {specials}",
                tok.vocab_size,
                f"the tokenizer's {specials} special tokens take that many ids",
            )


def _check_objective(cfg: Any, given_data: set[str]) -> None:
    """The pretraining objective's own demands: a model family it trains, sequences long enough for a target,
    no ``data`` key typed (``given_data``) that its examples do not use. A preset's value for such a key passes:
    ``debug=tiny`` sets the one its model preset's usual objective reads, whichever objective is chosen."""
    from omegaconf import OmegaConf

    from lmtrain.models.families import ModelFamily  # torch: imported only when a pretrain config is checked
    from lmtrain.objectives.plug import PretrainingObjective
    from lmtrain.plugs import plug_class

    objective = plug_class(cfg.objective, "objective", PretrainingObjective)(OmegaConf.to_object(cfg.objective))
    least, reason = objective.min_seq_len()
    if cfg.data.max_seq_len < least:
        raise ConfigRangeError(
            "data.max_seq_len", f">= {least} for objective={objective.name}", cfg.data.max_seq_len, reason
        )
    if not cfg.get("init"):  # with init= the loaded model is what trains: `pretrain` checks it once loaded
        family = plug_class(cfg.model, "model", ModelFamily)(OmegaConf.to_object(cfg.model))
        objective.check(
            family.config_capabilities(), f"model={cfg.model.name} ({family.name} family)", cfg.data.max_seq_len
        )
        _check_packing(cfg, family)
    unread = objective.unread_data_keys()
    for key in [key for key in unread if key in given_data]:
        raise IgnoredKeyError(
            f"data.{key}",
            cfg.data.get(key),
            f"is read only {unread[key]}; the chosen objective={objective.name} would ignore it",
            "Drop the key, or choose an objective that reads it.",
        )


def _check_packing(cfg: Any, family: Any, chosen: str | None = None) -> None:
    """Refuse ``trainer.packing=on`` for a model family that says it never packs, before a run folder exists
    (a family that does not say is checked once its model is built). ``chosen``: how the model was chosen, in
    words (default ``model=<name>``)."""
    trainer = cfg.get("trainer")
    if trainer is None or trainer.get("packing") != "on" or family.packs is not False:
        return
    from lmtrain.models.packing import WHY_NOTHING_PACKS

    raise ConfigRangeError(
        "trainer.packing",
        f"auto or off for {chosen or f'model={cfg.model.name}'} ({family.name} family)",
        "on",
        f"{WHY_NOTHING_PACKS}; leave trainer.packing at auto or set it to off",
    )


def _check_init_packing(cfg: Any) -> None:
    """:func:`_check_packing` for the model ``init=`` names, when it is a run or checkpoint on disk of a family
    lmtrain has (read from its ``model.json``; a Hub id, a Hugging Face folder or a family of your own is
    checked once the model is built, as before)."""
    from pathlib import Path

    trainer, init = cfg.get("trainer"), cfg.get("init")
    if trainer is None or trainer.get("packing") != "on" or not init or not Path(str(init)).expanduser().exists():
        return
    from lmtrain.errors import UserError
    from lmtrain.models.families import ModelFamily
    from lmtrain.models.loading import locate_model, read_meta

    try:
        meta = read_meta(locate_model(Path(str(init)).expanduser(), "init"))
    except UserError:  # not a model: the command says so when it loads it
        return
    family = ModelFamily.registry.get(str(meta.get("family")))  # no import of a family named in a file
    if family is not None:
        _check_packing(cfg, family, f"init={init}")


def check_config(cfg: Any, command: str, given: Iterable[str] = ()) -> None:
    """Check every value of ``cfg`` (``lmtrain <command>``'s composed config) against its allowed range, and
    refuse a value for a key that the chosen option (data source, objective) would not read.

    Args:
        given: the keys typed on the command line (``data.train_files``): refused where the chosen option
            does not read them even when their value is the default.
    Raises:
        UserError: naming the full key, the value and the allowed range, e.g.
            ``trainer.batch_size=0: must be >= 1``.
    """
    given = {key.lstrip("+~") for key in given}
    try:
        _check_data_keys(_build(cfg, ""), _given_data_keys(given))
        _cross_checks(cfg, command, given)
    except ConfigRangeError as error:
        raise range_error(error, command) from None
