"""The ranks' data check (without processes): what differs, named by rank and host; the tokenizer a
non-zero rank gets from rank 0 through the process group, with no file to read."""

from __future__ import annotations

import pytest

from lmtrain.data.tokenizer import train_tokenizer
from lmtrain.errors import UserError
from lmtrain.run_folder.layout import RunDir
from lmtrain.training.assembly import RunContext
from lmtrain.training.data_agreement import check_same_data, data_differences, tokenizer_digest
from lmtrain.training.distributed import Distributed
from tests.conftest import compose_config


class FakeRanks(Distributed):
    """Rank ``rank`` of a job whose collectives return what the other ranks are given to hold."""

    def __init__(self, rank: int, others: list, sent=None):
        super().__init__(rank=rank, world_size=len(others) + 1)
        self.others, self.sent = others, sent

    def gather(self, obj):
        return [*self.others[: self.rank], obj, *self.others[self.rank :]]

    def broadcast(self, obj):
        return obj if self.rank == 0 else self.sent


def _held(host: str, **digests: str) -> dict:
    return {"host": host, "digests": {k.replace("_", " "): v for k, v in digests.items()}}


def test_differences_name_each_thing_and_the_ranks_that_differ():
    held = [
        _held("a", tokenizer="t0", train_examples="e0"),
        _held("a", tokenizer="t0", train_examples="e0"),
        _held("b", tokenizer="t1", train_examples="e1"),
        _held("b", tokenizer="t0", train_examples="e9"),
    ]
    assert data_differences(held) == [
        "the tokenizer of rank 0 and of rank 2 (host b) differ (t0 vs t1)",
        "the train examples of rank 0 and of ranks 2 (host b), 3 (host b) differ (e0 vs e1)",
    ]
    assert data_differences(held[:2]) == []


def test_every_rank_refuses_to_train_on_data_that_differ():
    digests = {"tokenizer": "t0", "train examples": "e0"}
    check_same_data(FakeRanks(0, [_held("a", tokenizer="t0", train_examples="e0")]), digests)  # agreed: no error
    with pytest.raises(
        UserError,
        match=r"do not hold the same data.*the train examples of rank 0 and of rank 1 "
        r"\(host b\) differ.*data.cache_dir on a filesystem every node shares",
    ):
        check_same_data(FakeRanks(0, [_held("b", tokenizer="t0", train_examples="e1")]), digests)


def test_a_rank_on_another_node_gets_rank_0s_tokenizer_without_its_run_directory(tmp_path):
    cfg = compose_config("pretrain", ["debug=tiny"])
    trained = train_tokenizer(["the farmer painted the old barn", "a child found a red car"] * 20, cfg.tokenizer)
    missing = tmp_path / "this node's copy of rank 0's run directory"

    def never():
        raise AssertionError("only rank 0 trains the tokenizer")

    context = RunContext(None, FakeRanks(1, [None], sent=(trained.to_str(), trained.roles)), RunDir(missing), None, 0.0)
    received = context.run_tokenizer(never)  # read from a file, as before, it would not exist here
    assert not (missing / "tokenizer.json").exists()
    assert tokenizer_digest(received) == tokenizer_digest(trained)
    text = "the farmer found a red barn"
    assert received.encode_batch([text]) == trained.encode_batch([text]) and received.ids == trained.ids


def test_every_rank_must_resume_from_rank_0s_checkpoint(tmp_path):
    from lmtrain.training.assembly import _same_on_every_rank

    step = tmp_path / "checkpoints" / "step-4"
    assert _same_on_every_rank(FakeRanks(0, [str(step)]), step) == step
    with pytest.raises(UserError, match=r"rank 0 continues from .*step-4, but rank 1 found no checkpoint"):
        _same_on_every_rank(FakeRanks(0, [None]), step)
