"""Check lmtrain on a machine with CUDA GPUs in one command, and print one table.

    python scripts/gpu_check.py            # the tests marked `cuda`, then the bf16 benchmark against transformers
    python scripts/gpu_check.py --no-bench # the tests only

It runs the tests marked ``cuda`` (``tests/cuda/``: bf16 and fp16 training, SDPA's fused attention,
fused AdamW, ``trainer.compile=true``, exact resume; with 2 or more GPUs, DDP and FSDP under torchrun
with exact resume), then ``scripts/bench.py --device cuda --precision bf16`` (tokens/s against
``transformers``, with model FLOP utilisation against the bf16 matmul peak it measures on the device). It exits 1 if
anything failed, and 2 with one line on a machine without CUDA.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cuda_devices() -> list[str]:
    """The names of the visible CUDA devices (empty without CUDA)."""
    import torch

    return (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )


def run_tests(folder: Path) -> list[tuple[str, str, str]]:
    """(test, outcome, detail) of every test marked ``cuda``."""
    report = folder / "cuda-tests.xml"
    # -n 0: in one process, not the suite's worker processes sharing one GPU
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-m", "cuda", "tests/cuda", f"--junitxml={report}"]
    subprocess.run(command, cwd=ROOT)
    if not report.exists():
        return [("tests/cuda", "failed", "pytest wrote no report")]
    rows = []
    for case in ET.parse(report).getroot().iter("testcase"):
        problem = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        outcome = {"failure": "failed", "error": "failed", "skipped": "skipped"}.get(
            problem.tag if problem is not None else "", "passed"
        )
        detail = (problem.get("message") or "")[:90] if problem is not None else ""
        rows.append((case.get("name", "?"), outcome, detail))
    return rows


def run_bench(folder: Path) -> list[tuple[str, str, str]]:
    """One row per benchmark case: lmtrain against transformers in bf16, with MFU."""
    out = folder / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/bench.py",
            "--device",
            "cuda",
            "--precision",
            "bf16",
            "--kernels",
            "torch",
            "--no-tagging",
            "--data-steps",
            "0",
            "--json",
            str(out),
        ],
        cwd=ROOT,
    )
    if proc.returncode != 0 or not out.exists():
        return [("bench.py --device cuda --precision bf16", "failed", f"exit {proc.returncode}")]
    rows = []
    for row in json.loads(out.read_text()):
        if not isinstance(row, dict) or "lmtrain_mfu" not in row:
            continue
        name = " ".join(str(row.get(k, "")) for k in ("model", "size")).strip() or "training"
        ratio = row.get("ratio_torch")
        detail = f"MFU {row['lmtrain_mfu']:.1%}" + (f", {float(ratio):.2f}x transformers" if ratio else "")
        rows.append((f"bench {name}", "passed", detail))
    return rows or [("bench.py", "failed", "no training rows in its JSON")]


def main() -> None:
    """Run the checks, print the table, exit 1 on any failure (2 without CUDA)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmark")
    args = parser.parse_args()
    devices = cuda_devices()
    if not devices:
        print(
            "gpu_check: no CUDA device is visible here (torch.cuda.is_available() is False); run it on a GPU "
            "machine with a CUDA build of torch.",
            file=sys.stderr,
        )
        sys.exit(2)
    with tempfile.TemporaryDirectory(prefix="lmtrain-gpu-check-") as tmp:
        rows = run_tests(Path(tmp)) + ([] if args.no_bench else run_bench(Path(tmp)))
    print(f"\n{len(devices)} x {devices[0]}")
    width = max(len(name) for name, _, _ in rows)
    print(f"{'check':{width}}  {'result':7}  detail")
    for name, outcome, detail in rows:
        print(f"{name:{width}}  {outcome:7}  {detail}")
    sys.exit(1 if any(outcome == "failed" for _, outcome, _ in rows) else 0)


if __name__ == "__main__":
    main()
