"""Intrinsic evaluation of word vectors, as the field reports it.

- Word analogies (Mikolov et al., 2013: questions-words.txt): accuracy of 3CosAdd over the
  questions whose four words are all in the vocabulary, and the share of questions skipped.
- Word similarity (WordSim-353, SimLex-999): Spearman correlation between cosine similarity and
  human scores over the pairs in the vocabulary, and the share of pairs skipped.

Both through gensim's KeyedVectors.evaluate_word_analogies / evaluate_word_pairs, so the numbers
match what gensim users report. Shares are fractions in [0, 1].
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from gensim.models import KeyedVectors

from lmtrain.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class AnalogyResult:
    """Analogy accuracy over the questions in the vocabulary.

    Attributes:
        accuracy: correct / evaluated (0 when nothing could be evaluated).
        correct: questions answered correctly.
        evaluated: questions whose four words are all in the (restricted) vocabulary.
        total: questions in the file.
        oov: share of questions skipped for an out-of-vocabulary word.
    """

    accuracy: float
    correct: int
    evaluated: int
    total: int
    oov: float


@dataclass
class SimilarityResult:
    """Correlation with human similarity judgements over the pairs in the vocabulary.

    Attributes:
        spearman: Spearman's rho (NaN when no pair could be evaluated).
        pearson: Pearson's r.
        pairs: pairs evaluated.
        oov: share of pairs skipped for an out-of-vocabulary word.
    """

    spearman: float
    pearson: float
    pairs: int
    oov: float


def resolve_benchmark(name: str, key: str) -> Path:
    """A benchmark file: ``name`` as a path if it exists, else a file of gensim's test_data."""
    from gensim.test.utils import datapath

    for candidate in (Path(name).expanduser(), Path(datapath(name))):
        if candidate.is_file():
            return candidate
    raise UserError(
        f"{key}={name}: no such file, neither as a path nor in gensim's test_data "
        "(which has questions-words.txt, wordsim353.tsv, simlex999.txt)."
    )


def count_analogy_questions(path: Path) -> int:
    """Questions in an analogy file as gensim counts them: non-header lines of four words."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if not line.startswith(": ") and len(line.split()) == 4)


def evaluate_analogies(
    kv: KeyedVectors, path: Path, restrict_vocab: int = 300000, case_insensitive: bool = True
) -> AnalogyResult:
    """Analogy accuracy of ``kv`` on the question file ``path`` (questions-words.txt format)."""
    try:
        _, sections = kv.evaluate_word_analogies(
            str(path), restrict_vocab=restrict_vocab, case_insensitive=case_insensitive
        )
    except (ValueError, ZeroDivisionError) as error:  # no ": section" header / no question
        raise UserError(
            f"analogy file {path} is not in questions-words.txt format (': section' "
            f"lines, then 'a b c d' questions): {error or 'no questions'}."
        ) from None
    total_section = sections[-1]  # gensim appends the 'Total accuracy' section last
    correct, incorrect = len(total_section["correct"]), len(total_section["incorrect"])
    evaluated, total = correct + incorrect, count_analogy_questions(path)
    return AnalogyResult(
        accuracy=correct / evaluated if evaluated else 0.0,
        correct=correct,
        evaluated=evaluated,
        total=total,
        oov=1.0 - evaluated / total if total else 0.0,
    )


def evaluate_similarity(
    kv: KeyedVectors, path: Path, restrict_vocab: int = 300000, case_insensitive: bool = True
) -> SimilarityResult:
    """Correlation of ``kv``'s cosine similarities with the human scores of ``path``."""
    try:
        pearson, spearman, oov_percent = kv.evaluate_word_pairs(
            str(path), restrict_vocab=restrict_vocab, case_insensitive=case_insensitive
        )
    except ValueError:  # gensim raises when every pair is out of vocabulary
        return SimilarityResult(spearman=math.nan, pearson=math.nan, pairs=0, oov=1.0)
    oov = oov_percent / 100.0  # gensim returns a percentage
    with open(path, encoding="utf-8", errors="replace") as f:
        listed = sum(1 for line in f if line.strip() and not line.startswith("#") and len(line.split("\t")) == 3)
    return SimilarityResult(
        spearman=float(spearman[0]), pearson=float(pearson[0]), pairs=round(listed * (1.0 - oov)), oov=oov
    )


def main_metric(analogies: Optional[str], similarities: dict[str, str]) -> str | None:
    """The metric that ranks embedding runs (``lmtrain runs``): analogy accuracy when analogies are
    evaluated, else the first similarity benchmark's Spearman rho; None when nothing is evaluated."""
    if analogies:
        return "analogy_accuracy"
    return f"{next(iter(similarities))}_spearman" if similarities else None


def evaluate(
    kv: KeyedVectors,
    analogies: Optional[str],
    similarities: dict[str, str],
    restrict_vocab: int = 300000,
    case_insensitive: bool = True,
) -> dict[str, float]:
    """Every benchmark, as flat ``eval/...`` metrics for summary.json.

    Args:
        kv: the word vectors.
        analogies: analogy file (path or gensim test_data name); None = skip.
        similarities: benchmark name -> word-pair file (path or gensim test_data name).
        restrict_vocab: only the first (most frequent) N words take part.
        case_insensitive: compare upper-cased words.

    Returns:
        ``eval/analogy_accuracy``, ``eval/analogy_oov``, ``eval/analogy_questions`` and, per
        similarity benchmark NAME, ``eval/NAME_spearman``, ``eval/NAME_pearson``,
        ``eval/NAME_pairs`` (pairs evaluated) and ``eval/NAME_oov``.
    """
    metrics: dict[str, float] = {}
    if analogies:
        result = evaluate_analogies(
            kv, resolve_benchmark(analogies, "eval.analogies"), restrict_vocab, case_insensitive
        )
        metrics.update(
            {
                "eval/analogy_accuracy": result.accuracy,
                "eval/analogy_oov": result.oov,
                "eval/analogy_questions": result.evaluated,
            }
        )
        log.info(
            "analogies: %.4f (%d/%d), %.1f%% skipped",
            result.accuracy,
            result.correct,
            result.evaluated,
            100 * result.oov,
        )
    for name, file in similarities.items():
        similarity = evaluate_similarity(
            kv, resolve_benchmark(file, f"eval.similarities.{name}"), restrict_vocab, case_insensitive
        )
        metrics.update(
            {
                f"eval/{name}_spearman": similarity.spearman,
                f"eval/{name}_pearson": similarity.pearson,
                f"eval/{name}_pairs": similarity.pairs,
                f"eval/{name}_oov": similarity.oov,
            }
        )
    return metrics


def nearest_neighbours(
    kv: KeyedVectors, words: list[str], topn: int = 10
) -> tuple[dict[str, list[tuple[str, float]]], list[str]]:
    """The ``topn`` most cosine-similar words of each query word.

    A word missing as typed is looked up lower-cased.

    Returns:
        (neighbours, missing): query word -> [(neighbour, cosine)], and the words not found.
    """
    neighbours: dict[str, list[tuple[str, float]]] = {}
    missing = []
    for word in words:
        key = word if word in kv.key_to_index else word.lower()
        if key not in kv.key_to_index:
            missing.append(word)
            continue
        neighbours[key] = [(w, float(s)) for w, s in kv.most_similar(key, topn=topn)]
    return neighbours, missing


def unknown_words_error(missing: list[str], kv: KeyedVectors, vectors_path: Optional[Path] = None) -> UserError:
    """The error for query words missing from ``kv`` (``vectors_path``: where they were saved)."""
    words = ", ".join(repr(w) for w in missing)
    again = (
        f" The vectors are saved: query them again with `lmtrain embed method=load path={vectors_path} query=[...]`."
        if vectors_path
        else ""
    )
    return UserError(
        f"query word(s) {words} not in the vocabulary of {len(kv)} words; choose "
        "words that occur at least embed.min_count times in the corpus (or lower "
        f"embed.min_count).{again}"
    )
