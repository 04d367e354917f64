"""The command line's exit: one garbage collection, then the survivors out of the collector's view."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_the_cli_exits_without_collecting_every_survivor_again(tmp_path):
    # a handler registered before main() runs after lmtrain's (atexit is last in, first out)
    script = textwrap.dedent(f"""
        import atexit, gc
        from pathlib import Path

        class Cycle:
            def __init__(self):
                self.me = self
            def __del__(self):
                Path({str(tmp_path / "finalized")!r}).write_text("yes")

        atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
        from lmtrain.cli.main import main
        Cycle()  # unreachable but in a cycle: only a collection finalizes it
        main(["--version"])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "frozen at exit: True" in done.stdout
    assert (tmp_path / "finalized").read_text() == "yes"  # garbage is still finalized before the exit
