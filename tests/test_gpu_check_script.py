"""scripts/gpu_check.py on a machine without CUDA: one line and exit 2, nothing run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def test_without_cuda_it_says_so_in_one_line_and_exits_2():
    assert not torch.cuda.is_available()  # the suite hides GPUs (tests/conftest.py)
    out = subprocess.run(
        [sys.executable, "scripts/gpu_check.py"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "gpu_check: no CUDA device is visible here (torch.cuda.is_available() is False); run it on a GPU machine "
        "with a CUDA build of torch."
    ]
    assert out.stdout == ""
