"""All-but-the-top (Mu & Viswanath, 2018): remove the mean vector and the top principal directions.

Count-based vectors trained on a small corpus share a large common component (word frequency,
mostly): every cosine similarity is inflated by it, which hides the differences the similarity
benchmarks measure. Removing the mean and the few directions of largest variance takes it out.
"""

from __future__ import annotations

import numpy as np


def all_but_the_top(vectors: np.ndarray, n_components: int) -> np.ndarray:
    """``vectors`` minus their mean and their projection on the top ``n_components`` directions.

    Args:
        vectors: (V, D) word vectors.
        n_components: principal directions to remove (0 = only centre the vectors).

    Returns:
        (V, D) float32 post-processed vectors.
    """
    centred = vectors - vectors.mean(axis=0, keepdims=True)  # (V, D)
    if n_components <= 0:
        return centred.astype(np.float32)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    top = vt[:n_components]  # (n, D) orthonormal rows
    return (centred - (centred @ top.T) @ top).astype(np.float32)
