"""The command line's exit: one garbage collection, then the survivors out of the collector's view."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def _cycle_class(marker: Path) -> str:
    """Source of ``Cycle``: an object in a reference cycle that writes ``marker`` when it is finalized."""
    return textwrap.dedent(f"""
        from pathlib import Path

        class Cycle:
            def __init__(self):
                self.me = self
            def __del__(self):
                Path({str(marker)!r}).write_text("yes")
    """)


def test_the_cli_exits_without_collecting_every_survivor_again(tmp_path):
    # a handler registered before main() runs after lmtrain's (atexit is last in, first out)
    script = _cycle_class(tmp_path / "finalized") + textwrap.dedent("""
        import atexit, gc

        atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
        from lmtrain.cli.main import main
        Cycle()  # unreachable but in a cycle: only a collection finalizes it
        main(["--version"])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "frozen at exit: True" in done.stdout
    assert (tmp_path / "finalized").read_text() == "yes"  # garbage is still finalized before the exit


def test_the_command_line_freezes_what_it_imported_before_the_run_and_still_finalizes_garbage(tmp_path):
    """`lmtrain ...` (no argv given: the process's own command line) moves torch's and Hydra's objects out of
    the collector's view before the run, so the run's full collections skip them; garbage made before is
    still finalized. A caller's ``main([...])`` freezes nothing before the run."""
    script = _cycle_class(tmp_path / "finalized") + textwrap.dedent("""
        import gc, sys
        from lmtrain.cli.main import main
        how = sys.argv.pop(1)
        sys.argv = ["lmtrain", *sys.argv[1:]]
        Cycle()  # unreachable but in a cycle: only a collection finalizes it
        try:
            main(None if how == "console" else sys.argv[1:])
        finally:
            print("frozen before exit:", gc.get_freeze_count())
    """)
    for how, frozen in (("console", True), ("caller", False)):
        (tmp_path / "finalized").unlink(missing_ok=True)
        args = [sys.executable, "-c", script, how, "pretrain", "--cfg", "job", "trainer.max_steps=3"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        count = int(done.stdout.split("frozen before exit:")[1].split()[0])
        assert (count > 10_000) == frozen, (how, count)
        assert (tmp_path / "finalized").read_text() == "yes"
