"""The span-masking example: its statistics, and that lmtrain runs it as a plug from outside src/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1]
ROOT = EXAMPLE.parents[1]
sys.path.insert(0, str(EXAMPLE))

from span_masking.spans import SpanMasking, span_length_probs  # noqa: E402

from lmtrain.data.masking import IGNORE_INDEX, MaskingSpec  # noqa: E402

SPECIAL = (0, 1, 2, 3)  # pad, cls, sep, mask
SPEC = MaskingSpec(mask_id=3, vocab_size=500, special_ids=SPECIAL)


def _sequence(n_words: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """[CLS] words of 1-3 sub-word tokens [SEP], with their word ids."""
    ids, words = [1], [-1]
    for w in range(n_words):
        for _ in range(int(rng.integers(1, 4))):
            ids.append(int(rng.integers(10, 500)))
            words.append(w)
    return np.asarray(ids + [2]), np.asarray(words + [-1])


def test_span_lengths_follow_the_clipped_geometric_distribution():
    probs = span_length_probs(0.2, 10)
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-12
    assert abs(float((np.arange(1, 11) * probs).sum()) - 3.8) < 0.05  # SpanBERT's mean span length
    masking = SpanMasking(SPEC, p=0.2, max_span=10)
    rng = np.random.default_rng(0)
    lengths = []
    for _ in range(300):
        ids, words = _sequence(120, rng)
        for span in masking.select(ids, rng, words):
            lengths.append(len(set(words[span])))
    assert max(lengths) <= 10
    assert abs(np.mean(lengths) - 3.8) < 0.5  # spans at the end of a sequence are cut short


def test_spans_are_whole_contiguous_words_and_about_15_percent():
    masking = SpanMasking(SPEC)
    rng = np.random.default_rng(1)
    shares = []
    for _ in range(200):
        ids, words = _sequence(80, rng)
        corrupted, labels = masking(ids, rng, words)
        selected = labels != IGNORE_INDEX
        assert not selected[0] and not selected[-1]  # special tokens never
        assert (labels[selected] == ids[selected]).all()  # labels are the original tokens
        for w in np.unique(words[selected]):  # whole words only
            assert selected[words == w].all()
        shares.append(selected.sum() / (len(ids) - 2))
        for span in masking.select(ids, np.random.default_rng(7), words):
            assert (np.diff(span) == 1).all()  # contiguous
    assert 0.14 < np.mean(shares) < 0.19


def test_each_span_is_replaced_as_a_whole():
    masking = SpanMasking(SPEC)
    rng = np.random.default_rng(2)
    kinds = {"mask": 0, "kept": 0, "random": 0}
    for _ in range(300):
        ids, words = _sequence(60, rng)
        state = rng.bit_generator.state
        spans = masking.select(ids, rng, words)
        rng.bit_generator.state = state
        corrupted, _ = masking(ids, rng, words)
        for span in spans:
            if (corrupted[span] == SPEC.mask_id).all():
                kinds["mask"] += 1
            elif (corrupted[span] == ids[span]).all():
                kinds["kept"] += 1
            else:
                assert not (corrupted[span] == SPEC.mask_id).any()
                kinds["random"] += 1
    total = sum(kinds.values())
    assert 0.75 < kinds["mask"] / total < 0.85
    assert 0.05 < kinds["kept"] / total < 0.15 and 0.05 < kinds["random"] / total < 0.15


def _pretrain(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """`lmtrain pretrain model=bert objective=span_mlm` as README gives it, on a corpus whose masked spans
    can be told from their context (runs of consecutive "words" from a random start)."""
    corpus = tmp_path / "corpus.txt"
    rng = np.random.default_rng(3)
    lines = []
    for _ in range(300):
        start = int(rng.integers(60))
        lines.append(" ".join(f"w{(start + i) % 60}" for i in range(24)))
    corpus.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lmtrain",
            "pretrain",
            "model=bert",
            "objective=span_mlm",
            f"hydra.searchpath=[file://{EXAMPLE / 'configs'}]",
            "model.size=tiny",
            "trainer.max_steps=150",
            "trainer.log_every=5",
            "trainer.eval_every=0",
            "trainer.progress=false",
            "trainer.preflight=false",
            "trainer.max_time=null",
            "trainer.batch_size=16",
            "data=text",
            f"data.train_files=[{corpus}]",
            "data.max_seq_len=32",
            f"data.cache_dir={tmp_path / 'cache'}",
            "tokenizer.vocab_size=200",
            "optim.lr=3e-3",
            f"hydra.run.dir={tmp_path / 'run'}",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_lmtrain_pretrains_with_the_span_objective_and_the_loss_falls(tmp_path):
    result = _pretrain(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["objective"] == "span_mlm"
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [e["train/mlm_loss"] for e in events if "train/mlm_loss" in e]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3
    assert summary["eval/mlm_acc"] > summary["baseline/mlm_majority_acc"] + 0.05  # learnt more than word counts
    saved = json.loads(next((tmp_path / "run" / "checkpoints").glob("step-*/model.json")).read_text())
    assert saved["objective_config"]["_target_"] == "span_masking.SpanMaskingObjective"


def test_a_key_the_span_schema_lacks_is_refused(tmp_path):
    result = _pretrain(tmp_path, "+objective.max_spam=4")
    assert result.returncode == 2
    assert "max_spam" in result.stderr and "SpanMaskingConfig" in result.stderr


def test_nothing_in_lmtrain_names_the_example():
    named = [
        path
        for path in sorted((ROOT / "src" / "lmtrain").rglob("*"))
        if path.is_file() and path.suffix in (".py", ".yaml") and "span_mlm" in path.read_text()
    ]
    assert named == []
