"""scripts/bf16_quality.py and scripts/packing_quality.py: the runs go to a new folder and the verdict
compares the difference of means with the seed-to-seed spread."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bf16_quality  # noqa: E402
import packing_quality  # noqa: E402


def test_run_all_runs_every_seed_and_setting_into_a_new_folder_and_refuses_an_existing_one(tmp_path):
    seen = []
    runs = bf16_quality.run_all(
        tmp_path / "out",
        ("a", "b"),
        argparse.Namespace(seeds=[1, 2]),
        lambda out, s, seed, args: seen.append(out) or {"setting": s, "seed": seed},
    )
    assert [(r["setting"], r["seed"]) for r in runs] == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert json.loads((tmp_path / "out" / "runs.json").read_text()) == runs and set(seen) == {tmp_path / "out"}
    with pytest.raises(SystemExit, match="exists already: name a new folder"):
        bf16_quality.run_all(tmp_path / "out", ("a",), argparse.Namespace(seeds=[1]), lambda *a: {})


def _runs(on: list[float], off: list[float]) -> list[dict]:
    return [
        {"packing": m, "seed": i + 1, "metric": v, "seconds": 10.0}
        for m, vs in (("on", on), ("off", off))
        for i, v in enumerate(vs)
    ]


@pytest.mark.parametrize(
    "on, off, verdict",
    [([0.89, 0.90], [0.895, 0.885], "within"), ([0.80, 0.81], [0.89, 0.90], "outside")],
)
def test_the_packing_verdict_weighs_the_difference_against_the_seed_spread(on, off, verdict):
    text = packing_quality.report(_runs(on, off), "eval/f1")
    assert f"the difference is {verdict} the seed-to-seed noise" in text
    assert "| on | 1 |" in text and "| off | 2 |" in text
