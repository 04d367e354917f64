"""The preflight's estimate scales its timed batches to what the run's batches compute: a fine-tuning set of
mostly short sentences is not estimated from its longest batch, nor its held-out set from its shortest."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lmtrain.models.packing import skips_padding
from lmtrain.training import preflight, session
from lmtrain.training.time_estimate import (
    MAX_BATCHES,
    Estimate,
    computed_tokens,
    evaluation_share,
    evaluations_left,
    example_lengths,
    nearest_mean,
    spaced,
    step_share,
)
from tests.commands.test_finetune_batches import _run
from tests.training.test_packing_run import overrides  # noqa: F401  (a fixture: uneven NER sentences)


def test_a_batch_computes_its_padded_slots_or_its_real_tokens_where_packing_skips_the_padding():
    lengths = np.array([10, 3, 2, 5])  # 20 real tokens in 40 slots
    assert computed_tokens(lengths, "off") == 40
    assert computed_tokens(lengths, "auto") == computed_tokens(lengths, "on") == 20
    barely = np.array([16] * 15 + [15])  # 255 of 256 slots: under auto's 1/16, not under on
    assert computed_tokens(barely, "auto") == 256 and computed_tokens(barely, "on") == 255
    assert computed_tokens(np.array([7, 7]), "on") == 14


def test_a_step_is_scaled_by_its_batches_mean_against_the_timed_one():
    lengths = np.array([40] * 4 + [4] * 12)
    longest, short = [0, 1, 2, 3], [[4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert step_share(lengths, [longest, *short], longest, "off") == pytest.approx((160 + 3 * 16) / 4 / 160)
    assert step_share(lengths, short, short[0], "auto") == 1.0
    assert step_share(lengths, [], longest, "off") == 1.0


def test_a_long_epoch_is_read_at_evenly_spaced_batches():
    batches = [[i] for i in range(2 * MAX_BATCHES)]
    picked = spaced(batches)
    assert len(picked) == MAX_BATCHES and picked[0] == [0] and picked[-1] == [2 * MAX_BATCHES - 1]
    assert spaced(batches[:10]) == batches[:10]
    lengths = np.arange(1, 2 * MAX_BATCHES + 1)
    assert step_share(lengths, batches, [len(lengths) - 1], "off") == pytest.approx(0.5, abs=1e-3)


def test_the_batch_timed_is_the_one_nearest_the_mean_width():
    assert nearest_mean(np.array([4.0, 10.0, 18.0, 30.0])) == 2  # mean 15.5
    assert nearest_mean(np.array([8.0, 8.0, 8.0])) == 0


def test_the_held_out_set_is_scaled_from_its_timed_batch_to_all_of_it():
    lengths = np.array([2, 2, 5, 5, 9, 9, 30])  # sorted by length, as the tasks' held-out sets are
    batches = [[0, 1], [2, 3], [4, 5], [6]]  # 4, 10, 18 and 30 padded slots
    assert evaluation_share(lengths, batches, batches[2]) == pytest.approx((4 + 10 + 18 + 30) / 18)
    assert evaluation_share(None, batches, batches[0]) == 4.0  # no lengths: every batch as wide


def test_lengths_that_do_not_cover_the_set_are_not_read():
    class Uneven(list):
        lengths = [3, 5]

    assert list(example_lengths(Uneven([1, 2]))) == [3, 5]
    assert example_lengths(Uneven([1, 2, 3])) is None  # a plug's lengths, one short: every batch as wide
    assert example_lengths([1, 2]) is None


class _Preflown(Exception):
    """Stops a run once its preflight is done."""


def test_a_run_of_uneven_sentences_is_estimated_from_a_typical_batch(tmp_path, overrides, monkeypatch):  # noqa: F811
    seen, timed_masks = [], []
    real_cost = preflight._train_step_cost

    def recording_cost(trainer, batch, typical):
        timed_masks.extend([batch["attention_mask"], typical["attention_mask"]])
        return real_cost(trainer, batch, typical)

    def preflight_only(trainer):
        seen.append((trainer, preflight.run_preflight(trainer)))
        raise _Preflown

    monkeypatch.setattr(preflight, "_train_step_cost", recording_cost)
    monkeypatch.setattr(preflight, "_eval_cost", lambda trainer: 0.0)  # the training part of the estimate alone
    monkeypatch.setattr(session, "run_preflight", preflight_only)
    # a plan longer than a first step measures; length-bucketed batches of sentences of 3 to about 30 words
    plan = [o for o in overrides if not o.startswith(("trainer.max_steps", "trainer.bucket_by_length"))]
    with pytest.raises(_Preflown):
        _run(tmp_path / "run", [*plan, "trainer.max_steps=400", "trainer.bucket_by_length=true"])
    trainer, report = seen[0]
    longest, typical = timed_masks
    assert typical.sum() < 0.8 * longest.sum()  # the second pass timed a typical batch, not the longest again
    line = r"longest batch \(8 x \d+\): peak memory .*; a typical batch \(8 x \d+\): forward"
    assert re.search(line, report.describe())

    # the typical batch's time, scaled by what the epoch's batches compute on average against it: their real
    # tokens where packing (the fixture's trainer.packing=on) skips their padding, else every slot
    def computed(mask) -> int:
        return int(mask.sum()) if skips_padding(int(mask.sum()), mask.numel(), "on") else mask.numel()

    masks = [trainer.collate([trainer.train_set[i] for i in b])["attention_mask"] for b in trainer.sampler.batches(0)]
    mean = np.mean([computed(m) for m in masks])
    assert report.estimated_seconds == pytest.approx(400 * 1.15 * report.step_seconds * mean / computed(typical))


def test_the_evaluations_counted_are_the_trainers_cadence_then_the_final_one():
    assert evaluations_left(0, 400, 50) == 8  # at 50, ..., 350, then the final one at 400
    assert evaluations_left(100, 400, 50) == 6  # resumed at step 100: 150, ..., 350, and the final one
    assert evaluations_left(0, 51, 50) == 2
    assert evaluations_left(0, 50, 50) == evaluations_left(0, 20, 50) == evaluations_left(0, 400, 0) == 1


def test_a_run_that_would_mostly_evaluate_is_told_how_to_evaluate_less():
    note = Estimate(100.0, 8, 10.0).evaluation_note()
    assert note == (
        "evaluation is most of that time (8 x about 10 s): raise trainer.eval_every to evaluate less often, "
        "or set trainer.eval_batches to evaluate on fewer held-out batches"
    )
    only_the_final = Estimate(100.0, 1, 60.0).evaluation_note()
    assert only_the_final is not None and "eval_every" not in only_the_final and "eval_batches" in only_the_final
    assert Estimate(100.0, 8, 6.0).evaluation_note() is None  # 48 of 100 s: training is most of it
    assert Estimate(1.0, 1, 0.9).evaluation_note() is None  # a run of a second: not worth a line


def test_the_preflight_says_when_evaluating_is_most_of_the_run(tmp_path, overrides, monkeypatch):  # noqa: F811
    seen = []

    def preflight_only(trainer):
        seen.append((trainer, preflight.run_preflight(trainer)))
        raise _Preflown

    monkeypatch.setattr(preflight, "_eval_cost", lambda trainer: 5.0)  # a slow held-out batch
    monkeypatch.setattr(session, "run_preflight", preflight_only)
    plan = [o for o in overrides if not o.startswith(("trainer.max_steps", "trainer.eval_every"))]
    with pytest.raises(_Preflown):
        _run(tmp_path / "run", [*plan, "trainer.max_steps=400", "trainer.eval_every=50"])
    _, report = seen[0]
    note = re.search(r"preflight: evaluation is most of that time \((\d+) x about ([^)]+)\): raise", report.describe())
    assert note is not None, report.describe()
    assert int(note.group(1)) == 8
