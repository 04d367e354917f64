"""The entities of a tag sequence, as CoNLL's ``conlleval`` (and seqeval's default mode) reads them.

``lmtrain predict`` turns each sentence's predicted tags into entity spans, and the evaluation's entity scores
count them (:func:`lmtrain.objectives.metrics.entity_scores`). seqeval's ``get_entities`` does the same, but
importing seqeval imports scikit-learn (about 1.8 s on 2 cores, at every NER run and most of a short ``predict``
call). The rules, for tags ``B-``, ``I-``, ``E-``, ``S-`` + a type, and ``O``: an entity ends
before a tag that starts one or leaves it (``O``, ``B``, ``S``, or another type), and after ``E`` or ``S``; it
starts at ``B`` or ``S``, at an ``I`` or ``E`` that follows ``O``, ``E`` or ``S``, and wherever the type changes.
An ill-formed sequence (``I-PER`` after ``O``) still yields its entities, as conlleval's do.
"""

from __future__ import annotations

from collections.abc import Sequence


def _split(tag: str) -> tuple[str, str]:
    """(prefix, type): ``B-PER`` -> ("B", "PER"), ``B-MISC-X`` -> ("B", "MISC-X"); a bare ``B`` (or ``O``) has the
    type ``_``."""
    return tag[:1], tag[1:].split("-", 1)[-1] or "_"


def _ends(prev: str, prev_kind: str, tag: str, kind: str) -> bool:
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I"):
        return tag in ("B", "S", "O") or kind != prev_kind
    return False


def _starts(prev: str, prev_kind: str, tag: str, kind: str) -> bool:
    if tag in ("B", "S"):
        return True
    if tag in ("I", "E"):
        return prev in ("E", "S", "O") or kind != prev_kind
    return False


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first index, last index) of each entity in ``tags``, in order (see the module docstring).

    >>> entity_spans(["B-PER", "I-PER", "O", "B-LOC"])
    [('PER', 0, 1), ('LOC', 3, 3)]
    """
    spans: list[tuple[str, int, int]] = []
    prev, prev_kind, begin = "O", "", 0
    for index, tag in enumerate([*tags, "O"]):
        prefix, kind = _split(tag)
        if _ends(prev, prev_kind, prefix, kind):
            spans.append((prev_kind, begin, index - 1))
        if _starts(prev, prev_kind, prefix, kind):
            begin = index
        prev, prev_kind = prefix, kind
    return spans
