"""Packing tokenized text into training blocks with as little padding as possible.

A tokenized sentence is a (2, L) int array: token ids in row 0, word ids in row 1.
"""

from __future__ import annotations

import numpy as np


def _framed(content: np.ndarray, bos: int | None, eos: int | None) -> np.ndarray:
    """Add ``bos`` / ``eos`` (word id -1) around a (2, L) block."""
    parts = []
    if bos is not None:
        parts.append(np.array([[bos], [-1]]))
    parts.append(content)
    if eos is not None:
        parts.append(np.array([[eos], [-1]]))
    return np.concatenate(parts, axis=1).astype(np.int32)


def pack_stream(docs: list[list[np.ndarray]], block_len: int, eos_id: int) -> list[np.ndarray]:
    """GPT-2 style: every document followed by end-of-text, the stream cut into full blocks.

    The remainder shorter than ``block_len`` is dropped, so every block is full (no padding).
    """
    pieces = []
    for doc in docs:
        pieces.extend(doc)
        pieces.append(np.array([[eos_id], [-1]]))
    if not pieces:
        return []
    stream = np.concatenate(pieces, axis=1).astype(np.int32)  # (2, N)
    n_blocks = stream.shape[1] // block_len
    return [stream[:, i * block_len : (i + 1) * block_len] for i in range(n_blocks)]


def pack_sentences(
    docs: list[list[np.ndarray]], max_len: int, bos_id: int, eos_id: int, cross_documents: bool
) -> list[np.ndarray]:
    """RoBERTa's FULL-SENTENCES / DOC-SENTENCES: whole sentences packed into `<s> ... </s>` blocks.

    Args:
        docs: documents of (2, L) sentences.
        max_len: block length including `<s>` and `</s>`.
        bos_id, eos_id: the frame tokens; ``eos_id`` also separates documents within a block.
        cross_documents: True = a block may continue into the next document (full_sentences).
    Returns:
        Blocks of at most ``max_len`` tokens; a sentence longer than a block is split.
    """
    room = max_len - 2
    blocks: list[np.ndarray] = []
    current: list[np.ndarray] = []
    used = 0

    def close() -> None:
        nonlocal current, used
        if used:
            blocks.append(_framed(np.concatenate(current, axis=1), bos_id, eos_id))
        current, used = [], 0

    separator = np.array([[eos_id], [-1]])
    for doc in docs:
        new_document = True
        for sentence in doc:
            for start in range(0, sentence.shape[1], room):
                piece = sentence[:, start : start + room]
                boundary = new_document and used > 0  # a document starts inside this block
                if used + piece.shape[1] + boundary > room:
                    close()
                    boundary = False
                if boundary:
                    current.append(separator)
                    used += 1
                current.append(piece)
                used += piece.shape[1]
                new_document = False
        if not cross_documents:
            close()
    close()
    return blocks
