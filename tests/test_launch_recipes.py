"""The SLURM recipe: the script's torchrun line is the one docs/clusters.md shows, and torchrun accepts it."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "slurm" / "pretrain.sbatch"


def _srun_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("srun ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_docs_show_the_scripts_launch_line():
    assert _srun_line((ROOT / "docs" / "clusters.md").read_text()) == _srun_line(SCRIPT.read_text())


def test_the_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_torchrun_accepts_the_launch_line():
    from torch.distributed.run import get_args_parser

    values = {
        "$SLURM_NNODES": "2",
        "$GPUS_PER_NODE": "8",
        "$SLURM_JOB_ID": "123",
        "$HEAD_NODE": "node1",
        "$RDZV_PORT": "29500",
        "$RUN_DIR": "outputs/lmtrain",
        '"$@"': "model=gpt",
    }
    line = _srun_line(SCRIPT.read_text())
    for name, value in values.items():
        line = line.replace(name, value)
    words = shlex.split(line)
    args = get_args_parser().parse_args(words[words.index("torchrun") + 1 :])
    assert (args.nnodes, args.nproc_per_node, args.rdzv_backend, args.rdzv_endpoint) == (
        "2",
        "8",
        "c10d",
        "node1:29500",
    )
    assert args.module and args.training_script == "lmtrain"
    assert args.training_script_args[:2] == ["pretrain", "hydra.run.dir=outputs/lmtrain"]
