"""Models and tokenizers named by a Hugging Face Hub id, found in the local cache first.

A name that exists on disk is a local path. Otherwise, if it has the shape of a Hub id
(``bert-base-uncased``, ``org/name``, either with ``@revision``: a branch, tag or commit), it is
looked up in huggingface_hub's cache (``HF_HOME`` / ``HF_HUB_CACHE``); only when it is not there,
or lacks the files needed, is it downloaded (with huggingface_hub's progress bars), and never
while ``HF_HUB_OFFLINE`` is set. Only weights in safetensors (or, where a repository has none,
``pytorch_model.bin``, which is read without unpickling code), configs and tokenizer files are
fetched; code in a repository is never downloaded nor run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from lmtrain.errors import UserError

log = logging.getLogger(__name__)

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    *TOKENIZER_FILES,
)
_LEGACY_WEIGHTS = ("pytorch_model.bin",)
HUB_MARK = "(Hugging Face Hub)"
_COMMIT = re.compile(r"[0-9a-f]{40}")  # a snapshot folder's name: the commit hash
# org/name as the Hub spells repository ids (letters, digits, - _ .), then an optional @revision
_HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?)(?:@(?P<revision>[\w./-]+))?")


@dataclass(frozen=True)
class HubId:
    """A Hugging Face Hub repository id and an optional revision (branch, tag or commit)."""

    repo: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo + (f"@{self.revision}" if self.revision else "")


def parse_hub_id(name: str) -> HubId | None:
    """``name`` as a Hub id (``org/name@revision``), or None where it cannot be one (a path, ``..``)."""
    match = _HUB_ID.fullmatch(name.strip())
    if match is None or ".." in match["repo"] or "--" in match["repo"] or match["repo"].endswith("."):
        return None
    if match["revision"] is not None and revision_problem(match["revision"]):
        return None
    return HubId(match["repo"], match["revision"])


def revision_problem(revision: str) -> str | None:
    """Why ``revision`` cannot name a branch, tag or commit (None if it can).

    Git's rules for ref names, as far as they keep a name inside the cache's ``refs/`` folder: no part
    of ``a/b/c`` is empty or starts with a dot (so no ``.`` or ``..``), and none ends with ``.lock``.
    """
    parts = revision.split("/")
    if any(not part or part.startswith(".") or part.endswith(".lock") for part in parts):
        return (
            "a branch, tag or commit name has no empty part, no part starting with a dot (such as . or ..) "
            "and no part ending in .lock"
        )
    return None


def snapshot_hub_id(folder: Path) -> HubId | None:
    """The Hub id and commit of a snapshot folder of the cache (``models--org--name/snapshots/<sha>``), else None."""
    repo_dir = folder.parent.parent.name
    if folder.parent.name != "snapshots" or not repo_dir.startswith("models--"):
        return None
    return HubId(repo_dir[len("models--") :].replace("--", "/"), folder.name)


def describe_hub_model(hub: HubId) -> str:
    """How a run records a Hub model it started from (``org/name@<commit> (Hugging Face Hub)``)."""
    return f"{hub} {HUB_MARK}"


def recorded_hub_model(source: str) -> HubId | None:
    """The Hub model a run's recorded source names (see :func:`describe_hub_model`), else None."""
    if not source.endswith(HUB_MARK):
        return None
    return parse_hub_id(source[: -len(HUB_MARK)].strip())


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloaded repositories (``HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Whether huggingface_hub is told not to reach the network (``HF_HUB_OFFLINE``)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def has_model_files(folder: Path) -> bool:
    """Whether ``folder`` holds a Hugging Face model: config.json and its weights."""
    weights = ("model.safetensors", "model.safetensors.index.json", *_LEGACY_WEIGHTS)
    return (folder / "config.json").is_file() and any((folder / name).is_file() for name in weights)


def has_tokenizer_files(folder: Path) -> bool:
    """Whether ``folder`` holds a tokenizer: tokenizer.json, WordPiece vocab.txt, or BPE vocab.json + merges.txt."""
    return any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt")) or (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    )


def resolve_source(name: str, key: str, tokenizer_only: bool = False) -> Path:
    """The local path ``name`` names, or the cached (else downloaded) snapshot of the Hub id it names.

    Args:
        name: a path, or a Hub id such as ``bert-base-uncased`` or ``org/name@revision``.
        key: the config key that gave ``name`` (for error messages).
        tokenizer_only: fetch only tokenizer files (for ``tokenizer.path``), not weights.
    Returns:
        An existing path: ``name`` itself, or the snapshot folder in the Hugging Face cache.
    Raises:
        UserError: neither a path nor an available Hub model (the message names the cache folder).
    """
    path = Path(name).expanduser()
    if path.exists():
        return path
    repo, at, revision = name.strip().partition("@")
    if at and parse_hub_id(repo) is not None and revision_problem(revision):
        raise UserError(
            f"{key}={name}: {revision!r} is not a revision of a Hugging Face Hub model: "
            f"{revision_problem(revision)}. Name a branch (main), a tag or a commit hash."
        )
    hub = parse_hub_id(name)
    if hub is None:
        raise UserError(
            f"{key}={name}: no such file or directory. Give a run directory (outputs/pretrain/...), "
            "one of its checkpoints (.../checkpoints/step-N), a Hugging Face folder, or a Hugging "
            "Face Hub id such as bert-base-uncased or org/name@revision."
        )
    return hub_snapshot(hub, key, tokenizer_only)


def hub_snapshot(hub: HubId, key: str, tokenizer_only: bool = False) -> Path:
    """The snapshot folder of ``hub``: from the cache when complete, else downloaded unless offline."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    complete = has_tokenizer_files if tokenizer_only else has_model_files
    try:
        folder = _in_cache_layout(
            Path(snapshot_download(hub.repo, revision=hub.revision, local_files_only=True)), hub, key
        )
        if complete(folder):
            return folder
        missing = "tokenizer files" if tokenizer_only else "config.json or the weights"
    except LocalEntryNotFoundError:
        folder, missing = None, None
    if hub_offline():
        raise _not_available(hub, key, folder, missing)
    return _download(hub, key, tokenizer_only)


def _in_cache_layout(folder: Path, hub: HubId, key: str) -> Path:
    """``folder`` if it is a snapshot of ``hub`` in the cache (``models--org--name/snapshots/<commit>``).

    A ref file of the cache (``refs/main``) names the commit; one that names a path instead
    (``../../elsewhere``) would lead outside the cache, so it is refused.
    """
    snapshots = hub_cache_dir() / ("models--" + hub.repo.replace("/", "--")) / "snapshots"
    if folder.parent != snapshots or not _COMMIT.fullmatch(folder.name):
        raise UserError(
            f"{key}={hub}: the Hugging Face cache names {folder} as its snapshot, which is not a commit "
            f"folder of {snapshots}; a file under refs/ of the cache is damaged. Download the model "
            "again (`hf download`), or give a local folder."
        )
    return folder


def _not_available(hub: HubId, key: str, folder: Path | None, missing: str | None) -> UserError:
    cache = hub_cache_dir()
    looked = cache / ("models--" + hub.repo.replace("/", "--"))
    where = (
        f"its snapshot {folder} lacks {missing}"
        if folder
        else f"it is not in the Hugging Face cache {cache} (looked for {looked})"
    )
    return UserError(
        f"{key}={hub}: there is no local file or folder of that name, and {where}; HF_HUB_OFFLINE is "
        f"set, so nothing is downloaded. Download it where the Hub is reachable (`hf download "
        f"{hub.repo}{' --revision ' + hub.revision if hub.revision else ''}`) and copy that cache here "
        "or point HF_HOME at it, unset HF_HUB_OFFLINE to let lmtrain download it, or give a local "
        "folder."
    )


def _download(hub: HubId, key: str, tokenizer_only: bool) -> Path:
    """Download the files lmtrain reads (safetensors first; pytorch_model.bin only when there are none)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    log.info("downloading %s from the Hugging Face Hub into %s", hub, hub_cache_dir())
    try:
        folder = Path(
            snapshot_download(
                hub.repo, revision=hub.revision, allow_patterns=list(TOKENIZER_FILES if tokenizer_only else MODEL_FILES)
            )
        )
        if not tokenizer_only and not has_model_files(folder):
            folder = Path(snapshot_download(hub.repo, revision=hub.revision, allow_patterns=list(_LEGACY_WEIGHTS)))
    except GatedRepoError:
        raise UserError(
            f"{key}={hub}: the Hub model is gated; accept its terms on huggingface.co and log in "
            "(`hf auth login`), then run again."
        ) from None
    except RevisionNotFoundError:
        raise UserError(
            f"{key}={hub}: the Hub model has no revision {hub.revision!r}; name a branch, tag or commit it has."
        ) from None
    except RepositoryNotFoundError:
        raise UserError(
            f"{key}={hub}: there is no local file or folder of that name, and no Hugging Face Hub "
            "model with that id (or it is private: log in with `hf auth login`). Check the "
            "spelling or give a local path."
        ) from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        reason = " ".join(str(error).split())[:200]
        raise UserError(
            f"{key}={hub}: could not download it from the Hugging Face Hub ({reason}), and the cache "
            f"{hub_cache_dir()} does not hold it. Check the network, or set HF_HUB_OFFLINE=1 and use "
            "a cached model or a local folder."
        ) from None
    complete = has_tokenizer_files if tokenizer_only else has_model_files
    if not complete(folder):
        what = (
            "a tokenizer (tokenizer.json, vocab.txt or vocab.json + merges.txt)"
            if tokenizer_only
            else "config.json and safetensors (or pytorch_model.bin) weights"
        )
        raise UserError(
            f"{key}={hub}: the Hub repository has no {what}; lmtrain reads models saved with save_pretrained."
        )
    return folder
