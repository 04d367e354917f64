"""A whole run imports only what it uses: no ``torch._dynamo`` without compilation, no FSDP without sharding; nor
does loading its checkpoint again (``generate``, ``evaluate``; ``predict`` and ``finetune init=`` load alike).

Each is half a second or more of a 2-core CPU, paid by every run that loads it (docs/performance.md).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

UNUSED = ("torch._dynamo", "torch.distributed.fsdp")


def _modules_loaded_by(tmp_path: Path, *args: str) -> list[str]:
    """Run ``lmtrain <args>`` in a fresh interpreter; the modules of UNUSED it imported."""
    script = textwrap.dedent(f"""
        import sys
        from lmtrain.cli.main import main
        try:
            main({list(args)!r})
        finally:
            print("LOADED", [name for name in {UNUSED!r} if name in sys.modules])
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return ast.literal_eval(done.stdout.split("LOADED", 1)[1].strip())  # the list printed above


def test_a_pretraining_run_and_its_resume_import_neither_dynamo_nor_fsdp(tmp_path):
    run = tmp_path / "run"
    common = ["trainer.eval_every=1", "trainer.save_every=1", "trainer.eval_batches=1"]
    first = ["pretrain", "debug=tiny", "trainer.max_steps=2", *common, f"hydra.run.dir={run}"]
    assert _modules_loaded_by(tmp_path, *first) == []
    assert (run / "curves.png").is_file()
    assert _modules_loaded_by(tmp_path, "resume", str(run), "trainer.max_steps=3") == []  # restores the optimizer
    assert json.loads((run / "summary.json").read_text())["steps"] == 3


def test_loading_a_run_again_imports_neither(tmp_path):
    run = tmp_path / "run"
    first = ["pretrain", "debug=tiny", "trainer.max_steps=1", "trainer.eval_every=0", f"hydra.run.dir={run}"]
    assert _modules_loaded_by(tmp_path, *first) == []
    generated = ["generate", f"ckpt={run}", "prompt=The [MASK] fell .", f"hydra.run.dir={tmp_path / 'gen'}"]
    assert _modules_loaded_by(tmp_path, *generated) == []  # the model.json check on the meta device included
