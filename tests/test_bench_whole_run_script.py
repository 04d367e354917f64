"""scripts/bench_whole_run.py: a run's wall time split at the lines its log prints."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_whole_run  # noqa: E402

LOG = """\
[2026-12-06 09:17:31,000][lmtrain.data.pretraining][INFO] - using cached examples /tmp/cache/examples/a0
[2026-12-06 09:17:32,500][lmtrain.training.session][INFO] - plan: 40 steps (trainer.max_steps) x 16 sequences
[2026-12-06 09:17:34,000][lmtrain.training.session][INFO] - preflight: longest batch (16 x 128): forward
[2026-12-06 09:17:34,250][lmtrain.training.session][INFO] - preflight: estimated training time 0:00:42
[2026-12-06 09:17:44,900][lmtrain][INFO] - step 20/40 (50%)  epoch 0.01  loss 8.1618
[2026-12-06 09:17:54,250][lmtrain][INFO] - step 40/40 (100%)  epoch 0.02  loss 7.9848
[2026-12-06 09:17:55,750][lmtrain][INFO] - step 40: eval/mlm_loss 7.1734  eval/mlm_acc 0.0597
[2026-12-06 09:17:56,500][lmtrain.runs.plot][INFO] - training curves: /tmp/run/curves.png
"""


def _epoch(clock: str) -> float:
    return datetime.strptime(f"2026-12-06 {clock}", "%Y-%m-%d %H:%M:%S.%f").timestamp()


def test_each_phase_ends_at_its_log_line():
    seconds = bench_whole_run.phase_seconds(LOG, _epoch("09:17:29.000"), _epoch("09:17:57.000"))
    expected = {
        "start-up": 2.0,
        "assembly": 1.5,
        "preflight": 1.75,
        "training": 20.0,
        "evaluation": 1.5,
        "plot": 0.75,
        "exit": 0.5,
        "total": 28.0,
    }
    assert seconds == pytest.approx(expected)


def test_a_run_without_a_preflight_or_a_plot_has_no_such_phase():
    log = "\n".join(line for line in LOG.splitlines() if "preflight" not in line and "curves" not in line)
    seconds = bench_whole_run.phase_seconds(log, _epoch("09:17:29.000"), _epoch("09:17:57.000"))
    assert "preflight" not in seconds and "plot" not in seconds
    assert seconds["training"] == pytest.approx(21.75) and seconds["exit"] == pytest.approx(1.25)


def test_a_preflight_measured_on_the_first_step_ends_before_training():
    measured_later = (
        "[2026-12-06 09:17:34,250][lmtrain.training.session][INFO] - preflight: evaluation batch 0.25 s; "
        "checkpoints 62.9 MiB x 3 = 188.7 MiB, 74,021 MiB free; memory and time measured on the first step\n"
        "[2026-12-06 09:17:35,000][lmtrain][INFO] - preflight: first step (16 x 128, as wide as the longest batch)\n"
        "[2026-12-06 09:17:35,000][lmtrain][INFO] - preflight: estimated training time 0:00:42\n"
    )
    lines = LOG.splitlines(keepends=True)
    log = "".join([*lines[:2], measured_later, *lines[4:]])
    seconds = bench_whole_run.phase_seconds(log, _epoch("09:17:29.000"), _epoch("09:17:57.000"))
    assert seconds["preflight"] == pytest.approx(1.75) and seconds["training"] == pytest.approx(20.0)
