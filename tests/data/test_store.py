"""Memory-mapped example stores give exactly the batches the same arrays give from memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lmtrain.data.collate import PadCollator
from lmtrain.data.datasets import PretrainingDataset
from lmtrain.data.pretraining import masking_spec, prepare_pretraining_data
from lmtrain.data.sampler import EpochBatches
from lmtrain.data.store import ExampleStore
from tests.conftest import compose_config, write_corpus


def _batches(dataset: PretrainingDataset, pad_id: int, num_workers: int, epochs: int = 2) -> list[dict]:
    """Every batch of ``epochs`` shuffled epochs, read the way the trainer reads them."""
    sampler = EpochBatches(len(dataset), batch_size=4, seed=7, shuffle=True, drop_last=True)
    batches = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_sampler=sampler.batches(epoch), collate_fn=PadCollator(pad_id),
                            num_workers=num_workers, generator=torch.Generator())
        batches.extend(loader)
    return batches


@pytest.mark.parametrize("objective", ["mlm_nsp", "mlm_dynamic"])
def test_memory_mapped_store_gives_the_in_memory_batches(tmp_path, objective):
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=40)
    extra = ["model=roberta", "objective.masking=dynamic"] if objective == "mlm_dynamic" else []
    cfg = compose_config("pretrain", ["debug=tiny", "data=text", f"data.train_files=[{corpus}]",
                                      f"data.cache_dir={tmp_path / 'cache'}", *extra])
    data = prepare_pretraining_data(cfg.data, cfg.tokenizer, cfg.objective)
    mapped = ExampleStore(data.train.path)
    loaded = ExampleStore(data.train.path, in_memory=True)
    assert all(isinstance(a, np.memmap) for a in mapped.sequences.values())
    assert not any(isinstance(a, np.memmap) for a in loaded.sequences.values())
    assert len(set(mapped.lengths.tolist())) > 1  # ragged examples: padding and cutting are exercised

    dynamic = masking_spec(cfg.objective, data.tokenizer) if objective == "mlm_dynamic" else None
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
