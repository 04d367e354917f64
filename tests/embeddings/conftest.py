"""Tiny generated corpora shared by the embedding tests."""

from __future__ import annotations

import random

import pytest


def planted_synonym_corpus(n_docs: int = 300, seed: int = 0) -> list[list[str]]:
    """Documents of random filler words in which `alpha` and `beta` are interchangeable.

    Both planted words only ever appear as `left {alpha|beta} right`, chosen by a coin flip, so
    they have identical context distributions; every other word has random neighbours.
    """
    rng = random.Random(seed)
    fillers = [f"w{i}" for i in range(30)]
    docs = []
    for _ in range(n_docs):
        doc = [rng.choice(fillers) for _ in range(12)]
        for _ in range(2):
            at = rng.randrange(len(doc) + 1)
            doc[at:at] = ["left", rng.choice(["alpha", "beta"]), "right"]
        docs.append(doc)
    return docs


@pytest.fixture
def synonym_docs() -> list[list[str]]:
    return planted_synonym_corpus()
