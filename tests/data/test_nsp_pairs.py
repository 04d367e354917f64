"""BERT sentence pairs: half random next sentences from other documents, segments, lengths."""

import numpy as np

from lmtrain.data.nsp_pairs import IS_NEXT, IS_RANDOM, build_pairs

CLS, SEP = 2, 3


def _docs(n_docs=60, seed=0):
    """Documents whose tokens encode (document, sentence) so pairs can be traced back."""
    rng = np.random.default_rng(seed)
    docs = []
    for d in range(n_docs):
        sentences = []
        for _ in range(int(rng.integers(8, 16))):
            length = int(rng.integers(3, 10))
            ids = np.full(length, 1000 + d, dtype=np.int64)  # token id identifies the document
            sentences.append(np.stack([ids, np.arange(length)]))
        docs.append(sentences)
    return docs


def test_pairs_structure_and_random_next_from_other_document():
    pairs = build_pairs(_docs(), max_seq_len=48, short_seq_prob=0.1, cls_id=CLS, sep_id=SEP, seed=0)
    assert len(pairs) > 50
    random_share = np.mean([p.next_sentence_label == IS_RANDOM for p in pairs])
    assert 0.42 < random_share < 0.58
    for p in pairs:
        ids, types = p.input_ids, p.token_type_ids
        assert len(ids) <= 48 and len(ids) == len(types) == len(p.word_ids)
        assert ids[0] == CLS and ids[-1] == SEP
        seps = np.flatnonzero(ids == SEP)
        assert len(seps) == 2
        a, b = ids[1 : seps[0]], ids[seps[0] + 1 : -1]
        assert (types[: seps[0] + 1] == 0).all() and (types[seps[0] + 1 :] == 1).all()
        doc_a, doc_b = set(a.tolist()), set(b.tolist())
        assert len(doc_a) == 1
        if p.next_sentence_label == IS_NEXT:
            assert doc_b == doc_a
        else:
            assert doc_b.isdisjoint(doc_a)


def test_longer_side_truncated_to_fit():
    long_docs = [[np.stack([np.full(200, 10 + d), np.arange(200)]) for _ in range(3)] for d in range(4)]
    pairs = build_pairs(long_docs, max_seq_len=32, short_seq_prob=0.0, cls_id=CLS, sep_id=SEP, seed=1)
    assert pairs and all(len(p.input_ids) <= 32 for p in pairs)
