"""Packing: GPT blocks are full; RoBERTa blocks hold whole sentences, across documents or not."""

import numpy as np

from lmtrain.data.packing import pack_sentences, pack_stream

BOS, EOS = 0, 2


def _doc(doc_id, lengths):
    return [np.stack([np.full(n, 100 + doc_id), np.arange(n)]) for n in lengths]


def test_stream_blocks_are_full_and_documents_end_with_eos():
    docs = [_doc(0, [5, 7]), _doc(1, [4]), _doc(2, [9, 3])]
    blocks = pack_stream(docs, block_len=8, eos_id=EOS)
    assert all(b.shape == (2, 8) for b in blocks)
    stream = np.concatenate([b[0] for b in blocks])
    total = 5 + 7 + 4 + 9 + 3 + 3  # tokens + one eos per document
    assert len(stream) == total // 8 * 8
    assert (stream == EOS).sum() >= 2


def test_full_sentences_cross_documents_and_keep_sentences_whole():
    docs = [_doc(0, [3, 3]), _doc(1, [3, 3])]
    blocks = pack_sentences(docs, max_len=12, bos_id=BOS, eos_id=EOS, cross_documents=True)
    assert len(blocks) == 2
    first = blocks[0][0]
    assert first[0] == BOS and first[-1] == EOS
    assert {100, 101} <= set(first.tolist())  # both documents in one block, separated by </s>
    for block in blocks:
        assert block.shape[1] <= 12


def test_doc_sentences_never_cross_documents():
    docs = [_doc(0, [3, 3]), _doc(1, [3, 3])]
    blocks = pack_sentences(docs, max_len=12, bos_id=BOS, eos_id=EOS, cross_documents=False)
    for block in blocks:
        content = set(block[0].tolist()) - {BOS, EOS}
        assert len(content) == 1


def test_sentence_longer_than_block_is_split_not_dropped():
    blocks = pack_sentences([_doc(0, [25])], max_len=10, bos_id=BOS, eos_id=EOS, cross_documents=True)
    assert sum(b.shape[1] - 2 for b in blocks) == 25
