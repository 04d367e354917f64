"""The example store: appended batch by batch, read back by index from memory-mapped `.npy` files."""

from __future__ import annotations

import numpy as np
import pytest

from lmtrain.data.store import ExampleStore, StoreWriter, write_store


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
    assert isinstance(appended.sequences["input_ids"], np.memmap)
    assert np.load(tmp_path / "appended" / "input_ids.npy").shape == (20, 16)  # a standard .npy file
    for i in range(20):
        a, b = appended[i], written[i]
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]), (i, key)


def test_a_failed_write_leaves_no_store(tmp_path):
    with pytest.raises(ValueError, match="does not fit a store of width 4"):
        with StoreWriter(tmp_path / "store", width=4, meta={}) as writer:
            writer.append(*_examples(3, seed=0))
    assert not (tmp_path / "store").exists() and not ExampleStore.exists(tmp_path / "store")
