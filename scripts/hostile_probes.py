"""Try lmtrain as a hostile user would and print what each probe got: exit code, message, files intact.

    python scripts/hostile_probes.py            # every probe, in a temporary folder (several minutes on CPU)
    python scripts/hostile_probes.py -k resume  # only probes whose name contains "resume"
    python scripts/hostile_probes.py --keep     # keep the folder to look at the run directories

Each probe runs the real command line in a subprocess on a tiny model and checks the outcome the
safety guarantees promise. The probes live in groups under ``scripts/hostile/``, one module per
group, each with a ``PROBES`` dict; every module there is run, in name order. The last column says
whether a probe held; the exit status is 1 if any probe did not.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostile  # noqa: E402  (the groups, found beside this script)
from hostile.common import TINY, Outcome, Workspace  # noqa: E402


def all_probes() -> dict[str, Callable[[Workspace], Outcome]]:
    """Every group's probes, group by group in module-name order."""
    probes: dict[str, Callable[[Workspace], Outcome]] = {}
    for module in sorted(pkgutil.iter_modules(hostile.__path__), key=lambda m: m.name):
        group = importlib.import_module(f"hostile.{module.name}")
        for name, probe in getattr(group, "PROBES", {}).items():
            probes[f"{module.name}: {name}"] = probe
    return probes


def _prepare(root: Path) -> Workspace:
    ws = Workspace(root)
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, f"hydra.run.dir={root / 'finished'}")
    if proc.returncode != 0:
        sys.exit(f"could not make the finished run the probes attack:\n{proc.stderr[-3000:]}")
    return ws


def main() -> None:
    """Run the probes and print one row per probe."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default="", help="only probes whose name contains this text")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lmtrain-probes-"))
    failures = 0
    try:
        ws = _prepare(root)
        print(f"{'probe':48} {'exit':>4}  {'held':5} what it said")
        for name, probe in all_probes().items():
            if args.k not in name:
                continue
            try:
                outcome = probe(ws)
            except Exception as error:  # a probe that crashes did not hold
                outcome = Outcome(None, f"probe crashed: {type(error).__name__}: {error}", False)
            failures += not outcome.held
            print(
                f"{name:48} {str(outcome.code):>4}  {'yes' if outcome.held else 'NO':5} {outcome.message}", flush=True
            )
    finally:
        if args.keep:
            print(f"workspace kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
