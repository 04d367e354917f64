"""Before training, every rank of a job checks that it holds the same data as rank 0.

Each node may prepare its own copy of the examples (its own ``data.cache_dir``); if the copies
differ (different data files on one node, a stale cache), the ranks would train on different
token ids without any error. So the ranks all-gather the digests of their tokenizer and example
stores and refuse to start, naming the ranks that differ, unless every rank holds rank 0's.
"""

from __future__ import annotations

import hashlib
import logging
import socket
from typing import Any

from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.errors import UserError
from lmtrain.training.distributed import Distributed

log = logging.getLogger(__name__)


def tokenizer_digest(tokenizer: TextTokenizer) -> str:
    """SHA-256 of a tokenizer: its ``tokenizer.json`` text and its special-token roles."""
    roles = "".join(f"{role}={token}\n" for role, token in sorted(tokenizer.roles.items()))
    return hashlib.sha256((roles + tokenizer.to_str()).encode("utf-8")).hexdigest()


def data_differences(held: list[dict[str, Any]]) -> list[str]:
    """What differs from rank 0, one phrase per item: which ranks (and hosts) hold what.

    Args:
        held: per rank, in rank order: ``{"host": ..., "digests": {what: digest}}``.
    """
    reference = held[0]["digests"]
    differences = []
    for what in sorted({w for h in held for w in h["digests"]}):
        odd = [rank for rank, h in enumerate(held) if h["digests"].get(what) != reference.get(what)]
        if odd:
            ranks = ", ".join(f"{rank} (host {held[rank]['host']})" for rank in odd)
            differences.append(
                f"the {what} of rank 0 and of rank{'s' if len(odd) > 1 else ''} {ranks} differ "
                f"({str(reference.get(what))[:12]} vs {str(held[odd[0]]['digests'].get(what))[:12]})"
            )
    return differences


def check_same_data(dist: Distributed, digests: dict[str, str]) -> None:
    """Refuse to train unless every rank holds the digests rank 0 holds; rank 0 logs them.

    Args:
        dist: this process's place in the job (nothing happens in a single process).
        digests: what -> its digest (``tokenizer``, ``train examples`` ...).
    Raises:
        UserError: on every rank, naming the ranks whose data differ.
    """
    if not dist.enabled:
        return
    held = dist.gather({"host": socket.gethostname(), "digests": digests})
    differences = data_differences(held)
    if differences:
        raise UserError(
            f"The ranks of this job do not hold the same data, so they would train on different token ids: "
            f"{'; '.join(differences)}. Each node prepared its own copy in its data.cache_dir: give every node "
            "identical data files (data.train_files, data.eval_files) and tokenizer.path, or put data.cache_dir "
            "on a filesystem every node shares, so one node prepares and the others read it; then start again."
        )
    if dist.is_main:
        log.info(
            "all %d ranks hold the same data: %s",
            dist.world_size,
            ", ".join(f"{what} {digest[:12]}" for what, digest in sorted(digests.items())),
        )
