"""What changed between a run's saved config and the config of a command that continues it.

Resuming is exact only if the model, tokenizer, data, objective and batch shape are those the
checkpoint was trained with; a few settings only decide how long and how visibly training goes
on, and may change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Keys (or key prefixes) a resumed run may change: length, cadence, logging, where it runs.
RESUMABLE_KEYS = (
    "trainer.max_steps",
    "trainer.max_epochs",
    "trainer.max_time",
    "trainer.log_every",
    "trainer.eval_every",
    "trainer.eval_every_epochs",
    "trainer.eval_at_start",
    "trainer.eval_batches",
    "trainer.save_every",
    "trainer.keep_last",
    "trainer.resume",
    "trainer.overwrite",
    "trainer.loggers",
    "trainer.progress",
    "trainer.device",
    "trainer.num_workers",
    "trainer.compile",
    "trainer.early_stopping_patience",
    "trainer.monitor",
    "trainer.preflight",
    "trainer.checkpoint_format",
    "optim.decay_steps",
    "data.cache_dir",
)

_MISSING = object()


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": value}`` for every leaf of nested dicts (lists are leaves)."""
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def is_resumable(key: str) -> bool:
    """Whether ``key`` may differ from the saved config when a run is continued."""
    return any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)


@dataclass
class ConfigChanges:
    """The differences between a saved and a new config, split by whether resuming allows them."""

    allowed: dict[str, tuple[Any, Any]]  # key -> (saved, new)
    refused: dict[str, tuple[Any, Any]]

    @staticmethod
    def describe(changes: dict[str, tuple[Any, Any]], limit: int = 12) -> str:
        """``key: old -> new`` items, comma separated (the first ``limit``, then how many more)."""
        items = [f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items()]
        more = f" and {len(items) - limit} more" if len(items) > limit else ""
        return ", ".join(items[:limit]) + more


# Settings added since a run may have been saved whose default changes what such a run computes: the value
# that does what it did. A run saved without the key resumes with this value (`lmtrain resume` types it).
ADDED_KEYS: dict[str, Any] = {"trainer.packing": "off"}


def compare_configs(
    saved: dict[str, Any],
    new: dict[str, Any],
    moved: dict[str, str] | None = None,
    added: dict[str, Any] | None = None,
) -> ConfigChanges:
    """Split the differences of two (unresolved, nested) configs into allowed and refused ones.

    A key present on one side only (a setting added or removed between lmtrain versions) is not a
    difference: the saved run knew nothing of it, except the keys of ``added`` (:data:`ADDED_KEYS`),
    which a config saved before them is read as holding. ``moved`` maps a key's old place to its new
    one (``finetune.task_encoder`` -> ``task.encoder``): a config saved before the move is read at the new place.
    """
    old_flat, new_flat = flatten(saved), flatten(new)
    for key, value in (added or {}).items():
        old_flat.setdefault(key, value)
    for old_key, new_key in (moved or {}).items():
        if old_key in old_flat and new_key not in old_flat:
            old_flat[new_key] = old_flat[old_key]
        old_flat.pop(old_key, None)  # the old place holds only its default now: not a setting of either run
    allowed: dict[str, tuple[Any, Any]] = {}
    refused: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(old_flat) & set(new_flat)):
        old, value = old_flat[key], new_flat[key]
        if old == value:
            continue
        (allowed if is_resumable(key) else refused)[key] = (old, value)
    return ConfigChanges(allowed, refused)
