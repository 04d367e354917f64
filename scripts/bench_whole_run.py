"""Where a whole `lmtrain pretrain` run's wall time goes: start-up, assembly, preflight, training, evaluation, exit.

Runs the command in a subprocess, one run after another (the first fills the data cache, so later
runs time a cached-data run, as users see it from the second run on), and splits each run's wall time
at the lines its log prints. With ``--before SRC`` (another checkout's ``src/`` folder) the runs
alternate between that code and this one, so machine noise hits both alike, and the table gives
their ratio.

    python scripts/bench_whole_run.py                        # 3 cached-data runs, BERT mini, 40 steps
    python scripts/bench_whole_run.py --before /path/to/other-checkout/src --runs 3 --threads 1
    python scripts/bench_whole_run.py -- model=gpt trainer.max_steps=100   # other overrides
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

DEFAULT_OVERRIDES = ["model=bert", "model.size=mini", "trainer.max_steps=40", "trainer.batch_size=16"]
# phase -> the log line that ends it (the first match after the previous phase's)
PHASE_ENDS = {
    "start-up": re.compile(r"\]\[INFO\] - "),  # the first log line: config composed, command started
    "assembly": re.compile(r"\] - plan: "),
    # the last preflight line before training: the estimate, or the checks before a first step that measures
    "preflight": re.compile(r"\] - preflight: (estimated|evaluation batch)"),
    "training": re.compile(r"\] - step (\d+)/\1 \(100%\)"),
    "evaluation": re.compile(r"\] - step \d+: eval/"),
    "plot": re.compile(r"\] - training curves: "),
}
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def phase_seconds(log: str, started: float, ended: float) -> dict[str, float]:
    """Seconds of each phase of one run, from its log (``started``/``ended``: the process's epoch seconds).

    A phase whose closing line is missing (no preflight, no plot) gets no entry; ``exit`` is what
    follows the last line found, ``total`` the whole process.
    """
    seconds: dict[str, float] = {}
    previous, left = started, list(PHASE_ENDS)
    for line in log.splitlines():
        stamp = STAMP.match(line)
        found = next((i for i, name in enumerate(left) if PHASE_ENDS[name].search(line)), None) if stamp else None
        if found is None:
            continue
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        seconds[left[found]], previous = at - previous, at
        left = left[found + 1 :]  # phases skipped over had no line: that run had none of them
    seconds["exit"] = ended - previous
    seconds["total"] = ended - started
    return seconds


def one_run(overrides: list[str], cache: Path, run_dir: Path, src: str | None, threads: int | None) -> dict[str, float]:
    """Run ``lmtrain pretrain`` once (``src``: the code to run, else this checkout) and time its phases."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = str(Path(src).resolve())
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [
        sys.executable,
        "-m",
        "lmtrain",
        "pretrain",
        *overrides,
        f"data.cache_dir={cache}",
        f"hydra.run.dir={run_dir}",
        "trainer.progress=false",
    ]
    started = time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    ended = time.time()
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return phase_seconds(done.stdout + done.stderr, started, ended)


def main() -> None:
    """Parse arguments, warm the data cache, time the runs alternately, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side (median taken)")
    parser.add_argument("--before", help="another checkout's src/ folder, timed alternately with this one")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the runs")
    parser.add_argument("overrides", nargs="*", help="after --: the run's overrides (default: BERT mini, 40 steps)")
    args = parser.parse_args()
    overrides = args.overrides or DEFAULT_OVERRIDES
    sides = {"before": args.before, "after": None} if args.before else {"lmtrain": None}
    with tempfile.TemporaryDirectory(prefix="bench-whole-run-") as work:
        cache = Path(work) / "cache"
        one_run(overrides, cache, Path(work) / "warm-up", None, args.threads)  # fills the data cache
        times: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
        for i in range(args.runs):
            for side, src in sides.items():
                times[side].append(one_run(overrides, cache, Path(work) / f"{side}-{i}", src, args.threads))
                print(f"{side} run {i + 1}: {times[side][-1]['total']:.2f} s, load {os.getloadavg()[0]:.1f}")
    phases = [*PHASE_ENDS, "exit", "total"]
    print(f"{'phase':<12}" + "".join(f"{side:>12}" for side in sides) + ("  after/before" if args.before else ""))
    for phase in phases:
        medians = {side: statistics.median(t.get(phase, 0.0) for t in runs) for side, runs in times.items()}
        ratio = f"  {medians['after'] / medians['before']:.3f}" if args.before and medians["before"] else ""
        print(f"{phase:<12}" + "".join(f"{m:>12.2f}" for m in medians.values()) + ratio)


if __name__ == "__main__":
    main()
