"""The example store: appended batch by batch, memory-mapped when read, giving the in-memory batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lmtrain.data.collate import PadCollator
from lmtrain.data.datasets import PretrainingDataset
from lmtrain.data.masking import TokenMasking
from lmtrain.data.pretraining import masking_spec, prepare_pretraining_data
from lmtrain.data.sampler import EpochBatches
from lmtrain.data.store import ExampleStore, StoreWriter, index_shards, write_store
from tests.conftest import compose_config, objective_plug, write_corpus


def _examples(n: int, seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    ids = [rng.integers(0, 500, size=rng.integers(3, 17)).astype(np.int32) for _ in range(n)]
    return {"input_ids": ids, "labels": [x[::-1].copy() for x in ids]}, {"next_sentence_label": list(range(n))}


def test_batches_appended_read_back_like_one_write(tmp_path):
    parts = [_examples(n, seed) for seed, n in enumerate((7, 0, 12, 1))]
    with StoreWriter(tmp_path / "appended", width=16, meta={"objective": "mlm_nsp"}) as writer:
        for sequences, scalars in parts:
            writer.append(sequences, scalars)
    whole = {k: [x for s, _ in parts for x in s[k]] for k in ("input_ids", "labels")}
    labels = [v for _, scalars in parts for v in scalars["next_sentence_label"]]
    write_store(tmp_path / "whole", whole, {"next_sentence_label": labels}, {})
    appended, written = ExampleStore(tmp_path / "appended"), ExampleStore(tmp_path / "whole")
    assert len(appended) == len(written) == 20 and appended.meta["objective"] == "mlm_nsp"
    assert isinstance(appended.shards[0].sequences["input_ids"], np.memmap)
    assert np.load(tmp_path / "appended" / "input_ids.npy").shape == (20, 16)  # a standard .npy file
    for i in range(20):
        a, b = appended[i], written[i]
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]), (i, key)
        # and both give back exactly what went in
        assert np.array_equal(a["input_ids"], whole["input_ids"][i]) and np.array_equal(a["labels"], whole["labels"][i])
        assert a["next_sentence_label"] == labels[i]


def test_a_sharded_store_reads_as_its_shards_in_the_listed_order(tmp_path):
    parts = [_examples(n, seed) for seed, n in enumerate((5, 9, 1))]
    for name, (sequences, scalars) in zip(("c", "a", "b"), parts):  # listed order, not name order, counts
        write_store(tmp_path / "sharded" / name, sequences, scalars, {"objective": "mlm_nsp"})
    index_shards(tmp_path / "sharded", ["c", "a", "b"], {"objective": "mlm_nsp"})
    whole = {k: [x for s, _ in parts for x in s[k]] for k in ("input_ids", "labels")}
    labels = [v for _, scalars in parts for v in scalars["next_sentence_label"]]
    sharded = ExampleStore(tmp_path / "sharded")
    assert len(sharded) == 15 and len(sharded.shards) == 3 and sharded.meta["n"] == 15
    assert np.array_equal(sharded.lengths, [len(x) for x in whole["input_ids"]])
    for i in range(-15, 15):  # across every shard boundary, and from the end
        assert np.array_equal(sharded[i]["input_ids"], whole["input_ids"][i])
        assert np.array_equal(sharded[i]["labels"], whole["labels"][i])
        assert sharded[i]["next_sentence_label"] == labels[i]
    with pytest.raises(IndexError):
        sharded[15]
    index_shards(tmp_path / "sharded", ["a", "c", "b"], {"objective": "mlm_nsp"})  # other order, other digest
    assert ExampleStore(tmp_path / "sharded").content_digest() != sharded.content_digest()


def test_a_failed_write_leaves_no_store(tmp_path):
    with (
        pytest.raises(ValueError, match="does not fit a store of width 4"),
        StoreWriter(tmp_path / "store", width=4, meta={}) as writer,
    ):
        writer.append(*_examples(3, seed=0))
    assert not (tmp_path / "store").exists() and not ExampleStore.exists(tmp_path / "store")


def _batches(dataset: PretrainingDataset, pad_id: int, num_workers: int, epochs: int = 2) -> list[dict]:
    """Every batch of ``epochs`` shuffled epochs, read the way the trainer reads them."""
    sampler = EpochBatches(len(dataset), batch_size=4, seed=7, shuffle=True, drop_last=True)
    batches = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        loader = DataLoader(
            dataset,
            batch_sampler=sampler.batches(epoch),
            collate_fn=PadCollator(pad_id),
            num_workers=num_workers,
            generator=torch.Generator(),
        )
        batches.extend(loader)
    return batches


@pytest.mark.parametrize("objective", ["mlm_nsp", "mlm_dynamic"])
def test_memory_mapped_store_gives_the_in_memory_batches(tmp_path, objective):
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=40)
    extra = ["model=roberta", "objective.masking=dynamic"] if objective == "mlm_dynamic" else []
    cfg = compose_config(
        "pretrain",
        ["debug=tiny", "data=text", f"data.train_files=[{corpus}]", f"data.cache_dir={tmp_path / 'cache'}", *extra],
    )
    data = prepare_pretraining_data(cfg.data, cfg.tokenizer, objective_plug(cfg.objective))
    mapped = ExampleStore(data.train.path)
    loaded = ExampleStore(data.train.path, in_memory=True)
    assert all(isinstance(a, np.memmap) for shard in mapped.shards for a in shard.sequences.values())
    assert not any(isinstance(a, np.memmap) for shard in loaded.shards for a in shard.sequences.values())
    assert len(set(mapped.lengths.tolist())) > 1  # ragged examples: padding and cutting are exercised

    dynamic = TokenMasking(masking_spec(cfg.objective, data.tokenizer)) if objective == "mlm_dynamic" else None
    pad_id = data.tokenizer.id("pad")
    reference = _batches(PretrainingDataset(loaded, dynamic, seed=3), pad_id, num_workers=0)
    assert len(reference) >= 4
    for workers in (0, 2):  # worker processes receive the memory map pickled, not the arrays
        batches = _batches(PretrainingDataset(mapped, dynamic, seed=3), pad_id, num_workers=workers)
        assert len(batches) == len(reference)
        for got, want in zip(batches, reference):
            assert got.keys() == want.keys()
            for key in want:
                assert got[key].dtype == want[key].dtype, key
                assert torch.equal(got[key], want[key]), key


def test_the_recorded_content_digest_is_the_one_the_files_give(tmp_path):
    import json

    sequences, scalars = _examples(9, seed=3)
    write_store(tmp_path / "a", sequences, scalars, {"objective": "mlm"})
    recorded = ExampleStore(tmp_path / "a").content_digest()
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    del meta["content_sha256"]  # a store written before digests were recorded: computed from its files
    (tmp_path / "a" / "meta.json").write_text(json.dumps(meta))
    assert ExampleStore(tmp_path / "a").content_digest() == recorded
    sequences["input_ids"][4][0] += 1  # one token changed
    write_store(tmp_path / "b", sequences, scalars, {"objective": "mlm"})
    assert ExampleStore(tmp_path / "b").content_digest() != recorded
